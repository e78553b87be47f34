//! HS256 JSON Web Tokens: `sub` (the user id), `role`, `exp`, and `iat`
//! and `key` on the ones this server issues.
//!
//! Only the configured algorithm is accepted, so `alg: none` and
//! algorithm-confusion tokens fail verification like tampered ones.
//!
//! `key` is the account's token key ([`new_key`]): an id alone names
//! whoever has it now, and after the database is reset or restored while
//! the secret stays, that can be someone else than the token was issued
//! to. A token with a key is taken only while the account's key is the
//! same.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Places and manages their own orders.
    Trader,
    /// Also creates products.
    Admin,
}

impl Role {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trader => "trader",
            Self::Admin => "admin",
        }
    }

    /// The role a stored word names.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "trader" => Some(Self::Trader),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

/// A token's claims: the contract's `sub`, `exp` and `role`, which is all
/// a token minted by another service with the shared secret has to carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id, written as a string (RFC 7519 makes `sub` a string);
    /// read as a string or, since ids are integers in JSON, a number.
    #[serde(deserialize_with = "subject")]
    pub sub: String,
    /// The user's role when the token was issued.
    pub role: Role,
    /// Issued at, seconds since the epoch; informative, not required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
    /// The account's token key when the token was issued. Optional, so
    /// that a token another service mints with the shared secret and
    /// the contract's claims alone is still taken: naming the right
    /// account by its id is then that service's part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<i64>,
}

/// `sub` as a string, whether the token wrote it as one or as a number.
fn subject<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Subject {
        Text(String),
        Number(i64),
    }
    Ok(match Subject::deserialize(deserializer)? {
        Subject::Text(text) => text,
        Subject::Number(number) => number.to_string(),
    })
}

impl Claims {
    /// The user id.
    pub fn user_id(&self) -> Option<i64> {
        self.sub.parse().ok().filter(|id| *id > 0)
    }

    /// Whether the token was issued to the account that now has its id
    /// and this token key, as far as it says.
    pub fn fits(&self, token_key: i64) -> bool {
        self.key.is_none_or(|key| key == token_key)
    }
}

/// A new account's token key: random, from 1 to 2^52 (below 2^53, so that
/// a client that reads the token's claims as JavaScript numbers reads it
/// exactly).
pub fn new_key() -> Result<i64, getrandom::Error> {
    // 52 bits: the cast cannot wrap.
    Ok((getrandom::u64()? >> 12) as i64 + 1)
}

/// Why a token was refused; all of them mean 401.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Past `exp`.
    #[error("the token has expired")]
    Expired,
    /// Bad signature, wrong algorithm, malformed, or claims missing.
    #[error("the token is not valid")]
    Invalid,
}

/// Issues and verifies tokens with one secret.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// How long an issued token lasts, in seconds.
    lifetime: i64,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Tokens")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// Tokens signed with `secret`, valid for `lifetime` seconds.
    pub fn new(secret: &[u8], lifetime: i64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        // `sub` is required by `Claims` itself, which also takes it as a
        // number; the library's own check would refuse that.
        validation.set_required_spec_claims(&["exp"]);
        // A token minted elsewhere may say when it starts to count; before
        // then it must not be taken (RFC 7519, 4.1.5).
        validation.validate_nbf = true;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            lifetime,
        }
    }

    /// A token for `user_id`, whose token key is `key`, issued at `now`
    /// (seconds since the epoch), and when it expires.
    pub fn issue(
        &self,
        user_id: i64,
        role: Role,
        key: i64,
        now: i64,
    ) -> Result<(String, i64), TokenError> {
        let claims = Claims {
            sub: user_id.to_string(),
            role,
            iat: Some(now),
            exp: now + self.lifetime,
            key: Some(key),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|_| TokenError::Invalid)?;
        Ok((token, claims.exp))
    }

    /// The claims of a valid token.
    ///
    /// A token whose header has `crit` is refused: it names extensions
    /// the recipient must understand or reject (RFC 7515, 4.1.11), and
    /// this server understands none.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?;
        match data.header.crit {
            None => Ok(data.claims),
            Some(_) => Err(TokenError::Invalid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> i64 {
        crate::clock::now_micros() / crate::clock::SECOND
    }

    #[test]
    fn issued_tokens_verify_and_others_do_not() {
        let tokens = Tokens::new(b"a secret of reasonable length!!", 3_600);
        let (token, _) = tokens.issue(42, Role::Trader, 7, now()).expect("issues");
        let claims = tokens.verify(&token).expect("verifies");
        assert_eq!((claims.user_id(), claims.role), (Some(42), Role::Trader));
        assert!(claims.fits(7));
        assert!(!claims.fits(8), "another account that got id 42");

        let other = Tokens::new(b"another secret entirely........", 3_600);
        assert!(matches!(other.verify(&token), Err(TokenError::Invalid)));

        let (expired, _) = tokens
            .issue(42, Role::Trader, 7, now() - 7_200)
            .expect("issues");
        assert!(matches!(tokens.verify(&expired), Err(TokenError::Expired)));
    }

    #[test]
    fn keys_are_positive_and_exact_as_javascript_numbers() {
        for _ in 0..1_000 {
            let key = new_key().expect("randomness");
            assert!((1..1 << 53).contains(&key), "{key}");
        }
    }

    #[test]
    fn tokens_with_only_the_contracts_claims_verify() {
        let secret = b"a secret of reasonable length!!";
        let tokens = Tokens::new(secret, 3_600);
        let sign = |claims: serde_json::Value| {
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(secret),
            )
            .expect("signs")
        };
        let exp = now() + 60;
        for sub in [serde_json::json!("42"), serde_json::json!(42)] {
            let token = sign(serde_json::json!({"sub": sub, "role": "admin", "exp": exp}));
            let claims = tokens.verify(&token).expect("verifies");
            assert_eq!((claims.user_id(), claims.role), (Some(42), Role::Admin));
            assert!(claims.fits(7), "without a key, the id is all it says");
        }
        let expired = sign(serde_json::json!({"sub": "42", "role": "trader", "exp": exp - 3_600}));
        assert!(matches!(tokens.verify(&expired), Err(TokenError::Expired)));
        let started =
            sign(serde_json::json!({"sub": "42", "role": "trader", "exp": exp, "nbf": exp - 120}));
        assert!(tokens.verify(&started).is_ok());
        let not_yet =
            sign(serde_json::json!({"sub": "42", "role": "trader", "exp": exp + 600, "nbf": exp}));
        assert!(matches!(tokens.verify(&not_yet), Err(TokenError::Invalid)));
        let mut critical = Header::new(Algorithm::HS256);
        critical.crit = Some(vec!["exp".to_owned()]);
        let token = jsonwebtoken::encode(
            &critical,
            &serde_json::json!({"sub": "42", "role": "trader", "exp": exp}),
            &EncodingKey::from_secret(secret),
        )
        .expect("signs");
        assert!(
            matches!(tokens.verify(&token), Err(TokenError::Invalid)),
            "crit"
        );
        for refused in [
            serde_json::json!({"role": "trader", "exp": exp}),
            serde_json::json!({"sub": 4.2, "role": "trader", "exp": exp}),
            serde_json::json!({"sub": [42], "role": "trader", "exp": exp}),
            serde_json::json!({"sub": "42", "exp": exp}),
            serde_json::json!({"sub": "42", "role": "trader"}),
        ] {
            let token = sign(refused.clone());
            assert!(
                matches!(tokens.verify(&token), Err(TokenError::Invalid)),
                "{refused}"
            );
        }
    }
}
