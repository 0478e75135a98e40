//! The `bw` source (work in progress in this commit: see issue 3).

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::logging::Log;
use crate::source::Session;

pub fn open(_settings: &Settings, _log: &Log) -> Result<Box<dyn Session>> {
    Err(Error::Config("the bw source is not implemented yet; use COLIBRI_SOURCE=dir".into()))
}
