//! A secret value: zeroed when dropped, never printable.
//!
//! `Secret` has no `Debug` or `Display`, so a secret cannot reach a log line or an error message
//! by accident: the code that formats it would not compile. Code that must use the value
//! (rendering the env file, the child environment of `bw`) calls `expose`.

use zeroize::Zeroizing;

pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(Zeroizing::new(value))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Clone for Secret {
    fn clone(&self) -> Self {
        Secret::new(self.0.to_string())
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret::new(value.to_owned())
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}
