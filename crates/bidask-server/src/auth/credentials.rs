//! A username and a password, parsed at the edge.

use std::fmt;

/// 3 to 32 characters of ASCII letters, digits, `_`, `-` and `.`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

/// Why a username or password was refused; the message is the API's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// See [`Username`].
    #[error(
        "username must be 3 to 32 characters: ASCII letters (a-z, A-Z), digits, '_', '-' or '.'"
    )]
    Username,
    /// See [`Password`].
    #[error("password must be 8 to 128 characters")]
    Password,
}

impl Username {
    /// Parses a username.
    pub fn parse(text: &str) -> Result<Self, CredentialError> {
        let valid = (3..=32).contains(&text.len())
            && text
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.'));
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(CredentialError::Username)
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as the store compares it: names are one account in any
    /// case.
    pub fn folded(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for Username {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// 8 to 128 characters. Its `Debug` does not show it.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Parses a password.
    pub fn parse(text: &str) -> Result<Self, CredentialError> {
        if (8..=128).contains(&text.chars().count()) {
            Ok(Self(text.to_owned()))
        } else {
            Err(CredentialError::Password)
        }
    }

    /// The secret itself, for hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Password(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_short_plain_words() {
        assert!(Username::parse("ann").is_ok());
        assert!(Username::parse("ann.lee-2_x").is_ok());
        for bad in ["an", "", "ann lee", "ännä", &"a".repeat(33), "ann;drop"] {
            assert_eq!(
                Username::parse(bad),
                Err(CredentialError::Username),
                "{bad}"
            );
        }
    }

    #[test]
    fn passwords_have_a_length_and_stay_hidden() {
        assert!(Password::parse("1234567").is_err());
        let password = Password::parse("correct horse").expect("valid");
        assert_eq!(format!("{password:?}"), "Password(..)");
    }
}
