//! Accounts: credentials that can only hold valid values, argon2 password
//! hashes, and HS256 tokens.

pub mod credentials;
pub mod password;
pub mod token;

pub use credentials::{Password, Username};
pub use token::{Claims, Role, TokenError, Tokens};
