//! Test helpers.
pub mod fake_bw;
pub mod host;
pub mod real_bw;
