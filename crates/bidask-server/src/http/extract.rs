//! Who is calling: the identity from `Authorization: Bearer <token>`, and
//! the client's address.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::AppState;
use super::error::ApiError;
use crate::auth::{Claims, Role};

/// An authenticated user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct User {
    /// The user id.
    pub id: i64,
    /// What the token allows.
    pub role: Role,
}

impl FromRequestParts<AppState> for User {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = match credentials(&parts.headers)? {
            Credentials::Bearer(token) => token,
            Credentials::None => {
                return Err(ApiError::Unauthorized {
                    code: "missing_token",
                    message: "send Authorization: Bearer <token>",
                });
            }
            // No bearer token was sent, so none was refused: the challenge
            // carries no error (RFC 6750, 3.1).
            Credentials::Other => {
                return Err(ApiError::Unauthorized {
                    code: "missing_token",
                    message: "the Authorization header must be Bearer <token>",
                });
            }
        };
        let claims = state.tokens.verify(token)?;
        let id = claims.user_id().ok_or(ApiError::Unauthorized {
            code: "invalid_token",
            message: "the token is not valid",
        })?;
        state.limits.check_user(id)?;
        ensure_known(state, id, &claims).await?;
        Ok(Self {
            id,
            role: claims.role,
        })
    }
}

/// What a request's `Authorization` header holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials<'a> {
    /// No header.
    None,
    /// `Bearer <token>`; the scheme is case-insensitive (RFC 7235).
    Bearer(&'a str),
    /// Another scheme, or a value that is not one: `Basic` credentials a
    /// browser resends to a site behind a password-protected proxy, say.
    Other,
}

/// Reads the `Authorization` header. Two are refused: they could name two
/// users, and the server does not pick one.
pub fn credentials(headers: &HeaderMap) -> Result<Credentials<'_>, ApiError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(header) = values.next() else {
        return Ok(Credentials::None);
    };
    if values.next().is_some() {
        return Err(ApiError::Unauthorized {
            code: "invalid_token",
            message: "send one Authorization header",
        });
    }
    // A bare `Bearer` (the space after it trimmed away in transit) is a
    // bearer token that is empty, and refused as one.
    Ok(header
        .to_str()
        .ok()
        .map(|value| value.split_once(' ').unwrap_or((value, "")))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or(Credentials::Other, |(_, token)| {
            Credentials::Bearer(token.trim())
        }))
}

/// Refuses tokens of users the database does not have (a token signed
/// with the same secret for a database that was reset, say), and those
/// of another account than the one that has their id now.
async fn ensure_known(state: &AppState, id: i64, claims: &Claims) -> Result<(), ApiError> {
    let known = state
        .known_users
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&id)
        .copied();
    let token_key = match known {
        Some(token_key) => token_key,
        None => {
            let user = state
                .store
                .user_by_id(id)
                .await?
                .ok_or(ApiError::Unauthorized {
                    code: "invalid_token",
                    message: "the token's user does not exist",
                })?;
            state
                .known_users
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(id, user.token_key);
            user.token_key
        }
    };
    issued_to(claims, token_key)
}

/// Refuses a token issued to another account than the one that has its
/// id now, whose token key is `token_key`; REST and the feed alike.
pub fn issued_to(claims: &Claims, token_key: i64) -> Result<(), ApiError> {
    if claims.fits(token_key) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized {
            code: "invalid_token",
            message: "the token was issued to another account",
        })
    }
}

/// An authenticated admin. Anyone else is refused (403) before the body
/// is read: a trader learns nothing about a body but "not yours".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admin(pub User);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = User::from_request_parts(parts, state).await?;
        if user.role == Role::Admin {
            Ok(Self(user))
        } else {
            Err(ApiError::Forbidden("only admins may do this"))
        }
    }
}

/// The client's address: the TCP peer, or, for a peer in
/// `BIDASK_TRUSTED_PROXIES`, the client its `X-Forwarded-For` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
            return Err(ApiError::Internal(
                "a request without its connection's address".to_owned(),
            ));
        };
        Ok(Self(state.proxies.client(peer.ip(), &parts.headers)))
    }
}
