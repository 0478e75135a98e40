//! The one integration-test binary: every behaviour is checked through the built `colibri-vault`.

mod bastille_layout;
mod batch;
mod clones;
mod core;
mod fake_bw_fidelity;
mod formats;
mod host_files;
mod host_state;
mod hostile;
mod jail_cmd;
mod leaks;
#[cfg(target_os = "linux")]
mod memory;
mod notes;
mod operator;
mod packaging;
mod real_bw;
mod refresh;
mod server;
mod signals;
mod support;
mod syslog;
mod trust;
mod vault;
mod versions;
mod writer;
