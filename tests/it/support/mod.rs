//! Test helpers.
pub mod bwserver;
pub mod fake_bw;
pub mod host;
pub mod real_bw;
