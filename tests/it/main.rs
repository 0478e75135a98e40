//! The one integration-test binary: every behaviour is checked through the built `colibri-vault`.

mod batch;
mod core;
mod fake_bw_fidelity;
mod formats;
mod hostile;
mod jail_cmd;
mod operator;
mod packaging;
mod real_bw;
mod server;
mod support;
mod syslog;
mod vault;
mod versions;
