//! The one integration-test binary: every behaviour is checked through the built `colibri-vault`.

mod packaging;
mod support;
