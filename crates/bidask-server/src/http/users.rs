//! Registration, login and `GET /me`.

use axum::extract::State;
use axum::http::{HeaderName, StatusCode, header};
use axum::routing::{get, post};
use axum::{Json, Router};
use bidask_store::{NewUser, StoreError, UserRecord};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{ClientAddress, User};
use super::json;
use crate::auth::credentials::CredentialError;
use crate::auth::password::PasswordError;
use crate::auth::{Password, Role, Username, password, token};
use crate::clock::{SECOND, format_micros, now_micros};

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/register", post(register))
        .route("/auth/login", post(login))
        .route("/me", get(me))
}

/// A username and password.
#[derive(Deserialize, ToSchema)]
pub struct Credentials {
    /// 3 to 32 letters, digits, `_`, `-` or `.`; one account whatever the case.
    username: String,
    /// 8 to 128 characters; stored only as an Argon2id hash.
    password: String,
}

/// A user as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// The id the `user:{id}` feed channel and the orders carry.
    id: i64,
    /// As registered (case kept).
    username: String,
    /// `trader`, or `admin`, who may create products.
    role: String,
    /// When the account was made (RFC 3339, UTC, microseconds).
    created_at: String,
}

impl From<&UserRecord> for UserView {
    fn from(user: &UserRecord) -> Self {
        Self {
            id: user.id,
            username: user.username.clone(),
            role: user.role.clone(),
            created_at: format_micros(user.created_at),
        }
    }
}

/// A user with a fresh token.
#[derive(Serialize, ToSchema)]
pub struct Session {
    /// Whose token this is.
    user: UserView,
    /// Send as `Authorization: Bearer …` (or `?token=` on `/ws`).
    token: String,
    /// When the token stops working; log in again before then (RFC 3339).
    expires_at: String,
}

fn parse_credentials(body: &Credentials) -> Result<(Username, Password), ApiError> {
    let username = Username::parse(&body.username)
        .map_err(|error: CredentialError| ApiError::invalid("username", error))?;
    let password =
        Password::parse(&body.password).map_err(|error| ApiError::invalid("password", error))?;
    Ok((username, password))
}

fn session(state: &AppState, user: &UserRecord) -> Result<Session, ApiError> {
    let role = Role::parse(&user.role)
        .ok_or_else(|| ApiError::Internal(format!("user {} has role {:?}", user.id, user.role)))?;
    let (token, expires_at) = state
        .tokens
        .issue(user.id, role, user.token_key, now_micros() / SECOND)
        .map_err(|error| ApiError::Internal(error.to_string()))?;
    Ok(Session {
        user: UserView::from(user),
        token,
        expires_at: format_micros(expires_at * SECOND),
    })
}

#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", operation_id = "register", request_body = Credentials,
    responses((status = 201, description = "The account, created, and a token for it.", body = Session,
            headers(("Location" = String, description = "`/api/v1/me`, where the token reads the account."))),
        (status = 409, description = "The name is taken, in any case (`username_taken`).", body = ErrorBody),
        (status = 422, description = "The name or the password is refused (`validation_failed`, naming it).", body = ErrorBody)))]
async fn register(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    json::Json(body): json::Json<Credentials>,
) -> Result<(StatusCode, [(HeaderName, &'static str); 1], Json<Session>), ApiError> {
    state.limits.check_password_attempt(address)?;
    let (username, password) = parse_credentials(&body)?;
    let password_hash = password::hash(password).await.map_err(hashing_error)?;
    let token_key =
        token::new_key().map_err(|error| ApiError::Internal(format!("a token key: {error}")))?;
    let user = state
        .store
        .create_user(&NewUser {
            username: username.to_string(),
            password_hash,
            role: Role::Trader.as_str().to_owned(),
            created_at: now_micros(),
            token_key,
        })
        .await
        .map_err(|error| match error {
            StoreError::Conflict { .. } => {
                ApiError::conflict("username_taken", "that username is taken")
            }
            other => other.into(),
        })?;
    state.limits.signed_in(username.folded(), address);
    // The account's own address: `/me` with the token that comes with it.
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, "/api/v1/me")],
        Json(session(&state, &user)?),
    ))
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", operation_id = "login", request_body = Credentials,
    responses((status = 200, description = "A new token.", body = Session),
        (status = 401, description = "No such name, or the wrong password (`invalid_credentials`).", body = ErrorBody)))]
async fn login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    json::Json(body): json::Json<Credentials>,
) -> Result<Json<Session>, ApiError> {
    state.limits.check_password_attempt(address)?;
    let refused = ApiError::Unauthorized {
        code: "invalid_credentials",
        message: "wrong username or password",
    };
    // Malformed credentials cannot belong to anyone.
    let Ok((username, password)) = parse_credentials(&body) else {
        return Err(refused);
    };
    let caller = state.limits.check_login(&username.folded(), address)?;
    let user = state.store.user_by_name(username.as_str()).await?;
    // Verify against a real hash even for unknown users, so the response
    // time does not tell which usernames exist.
    let stored = user
        .as_ref()
        .map_or_else(|| DECOY_HASH.to_owned(), |user| user.password_hash.clone());
    let matches = password::verify(password, stored, caller)
        .await
        .map_err(hashing_error)?;
    match user {
        Some(user) if matches => {
            state.limits.signed_in(username.folded(), address);
            Ok(Json(session(&state, &user)?))
        }
        _ => Err(refused),
    }
}

/// Hashing slots busy past their wait are a 429; anything else is a bug.
fn hashing_error(error: PasswordError) -> ApiError {
    match error {
        PasswordError::Busy => ApiError::RateLimited { retry_after: 1 },
        other => ApiError::Internal(other.to_string()),
    }
}

/// An argon2id hash of a random password nobody knows.
const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$yLvPRqCKLEu4n6LsY4oJHRcXKVIgMCw4p9YJm3g2NRY";

#[utoipa::path(get, path = "/api/v1/me", tag = "auth", operation_id = "me", security(("bearer" = [])),
    responses((status = 200, description = "The caller's account.", body = UserView)))]
async fn me(State(state): State<AppState>, user: User) -> Result<Json<UserView>, ApiError> {
    let record = state
        .store
        .user_by_id(user.id)
        .await?
        .ok_or(ApiError::NotFound("no such user"))?;
    Ok(Json(UserView::from(&record)))
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::phc::PasswordHash;

    use super::DECOY_HASH;

    #[test]
    fn the_decoy_is_a_real_hash_so_unknown_users_cost_a_full_verification() {
        let parsed = PasswordHash::new(DECOY_HASH).expect("a valid PHC string");
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert!(parsed.hash.is_some());
    }
}
