//! A configured value that must never reach a log line, an error message or `--help`.

use std::fmt;

/// A secret setting (a signing key, an auth token, a database URL with its password).
///
/// Its `Debug` and `Display` print `[redacted]`, so deriving `Debug` on a struct that holds
/// one, or formatting it by mistake, leaks nothing; the value is read only through
/// [`Secret::expose`], which makes each use visible where it happens.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// The value itself, for the few places that sign, verify or connect with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}
