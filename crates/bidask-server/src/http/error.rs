//! The one error type of the API, and how each case becomes the contract's
//! `{"error": {"code", "message"}}` response.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bidask_engine::EngineError;
use bidask_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::TokenError;
use crate::market::actor::MarketError;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not JSON, or the request is malformed.
    #[error("{message}")]
    Malformed {
        /// snake_case code.
        code: &'static str,
        /// A sentence.
        message: String,
    },
    /// 401: no valid credentials.
    #[error("{message}")]
    Unauthorized {
        /// snake_case code.
        code: &'static str,
        /// A sentence.
        message: &'static str,
    },
    /// 403: authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(&'static str),
    /// 404: nothing there (or nothing of the caller's).
    #[error("{0}")]
    NotFound(&'static str),
    /// 405: the path exists, the method does not.
    #[error("this endpoint does not take that method")]
    MethodNotAllowed,
    /// 408: the request's body did not all arrive within the request time
    /// bound.
    #[error("the request body did not arrive within {} s", .0.as_secs())]
    BodyTimeout(std::time::Duration),
    /// 409: the request conflicts with the current state.
    #[error("{message}")]
    Conflict {
        /// snake_case code.
        code: &'static str,
        /// A sentence.
        message: String,
    },
    /// 413: the body is larger than the configured limit.
    #[error("the request body is too large")]
    TooLarge,
    /// 422: a field has an invalid value (named in the body's `field`).
    #[error("{message}")]
    Invalid {
        /// The offending field.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// 429: too many requests; try again after this many seconds.
    #[error("too many requests")]
    RateLimited {
        /// Seconds until a request will be accepted.
        retry_after: u64,
    },
    /// 503: the server is at a configured capacity (WebSocket connections).
    #[error("{0}")]
    AtCapacity(&'static str),
    /// 503: the database is unreachable or a commit failed.
    #[error("storage is unavailable, try again shortly")]
    Unavailable,
    /// 500: a bug. The cause is logged, never returned.
    #[error("internal error")]
    Internal(String),
}

/// Every error response: `{"error": {"code", "message"}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody<'a> {
    error: Detail<'a>,
}

/// What went wrong.
#[derive(Serialize, ToSchema)]
struct Detail<'a> {
    /// snake_case, stable: programs branch on it.
    code: &'a str,
    /// A sentence for people.
    message: String,
    /// The offending field of a 422.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    /// A 422 for `field`.
    pub fn invalid(field: impl Into<String>, message: impl ToString) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.to_string(),
        }
    }

    /// A 409.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }

    /// The status, the contract's code and the offending field.
    fn parts(&self) -> (StatusCode, &str, Option<&str>) {
        match self {
            Self::Malformed { code, .. } => (StatusCode::BAD_REQUEST, *code, None),
            Self::Unauthorized { code, .. } => (StatusCode::UNAUTHORIZED, *code, None),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", None),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", None),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", None),
            Self::BodyTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "body_timeout", None),
            Self::Conflict { code, .. } => (StatusCode::CONFLICT, *code, None),
            Self::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", None),
            Self::Invalid { field, .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                Some(field.as_str()),
            ),
            Self::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited", None),
            Self::AtCapacity(_) => (StatusCode::SERVICE_UNAVAILABLE, "at_capacity", None),
            Self::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", None),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error", None),
        }
    }

    /// The contract's snake_case code, e.g. for a metric label.
    pub fn code(&self) -> &str {
        self.parts().1
    }

    /// The response body.
    fn body(&self) -> ErrorBody<'_> {
        let (_, code, field) = self.parts();
        ErrorBody {
            error: Detail {
                code,
                message: self.to_string(),
                field,
            },
        }
    }

    /// The status and the body as text, to be stored and answered again
    /// (an idempotent request's first response).
    pub fn to_stored(&self) -> (StatusCode, String) {
        // A struct of strings always serializes.
        (
            self.parts().0,
            serde_json::to_string(&self.body()).unwrap_or_default(),
        )
    }

    /// The challenge a 401 about a bearer token carries (RFC 6750, 3):
    /// how to authenticate, and whether the token sent was refused. A
    /// refused login challenges no token.
    fn challenge(&self) -> Option<&'static str> {
        match self {
            Self::Unauthorized {
                code: "missing_token",
                ..
            } => Some("Bearer"),
            Self::Unauthorized {
                code: "invalid_token" | "token_expired",
                ..
            } => Some("Bearer error=\"invalid_token\""),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(cause) = &self {
            tracing::error!(%cause, "internal error");
        }
        let status = self.parts().0;
        let mut response = (status, axum::Json(self.body())).into_response();
        if let Self::RateLimited { retry_after } = self
            && let Ok(value) = HeaderValue::from_str(&retry_after.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if let Some(challenge) = self.challenge() {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(cause) => {
                tracing::warn!(%cause, "database unavailable");
                Self::Unavailable
            }
            StoreError::TimedOut => {
                tracing::warn!("database timed out");
                Self::Unavailable
            }
            // Routes that expect a conflict (a taken username) answer it
            // themselves; here the constraint's name, or SQLite's message
            // naming tables, stays in the log.
            StoreError::Conflict { constraint } => {
                tracing::warn!(%constraint, "write refused by a unique constraint");
                Self::conflict("conflict", "that already exists")
            }
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::Expired => Self::Unauthorized {
                code: "token_expired",
                message: "the token has expired; log in again",
            },
            TokenError::Invalid => Self::Unauthorized {
                code: "invalid_token",
                message: "the token is not valid",
            },
        }
    }
}

impl From<MarketError> for ApiError {
    fn from(error: MarketError) -> Self {
        match error {
            MarketError::NotOpen | MarketError::Rejected(EngineError::UnknownOrder(_)) => {
                Self::conflict(
                    "order_not_open",
                    "the order is already filled, cancelled or expired",
                )
            }
            MarketError::NotFound => Self::NotFound("no such order"),
            error @ MarketError::TooManyOpenOrders(_) => {
                Self::conflict("too_many_open_orders", error.to_string())
            }
            MarketError::Unavailable => Self::Unavailable,
            MarketError::Rejected(EngineError::UnknownMarket(_)) => {
                Self::invalid("size", "the product has no such size")
            }
            MarketError::Rejected(EngineError::AlreadyExpired) => {
                Self::invalid("expires_at", EngineError::AlreadyExpired)
            }
            MarketError::Rejected(error @ EngineError::QuantityNotAboveFilled { .. }) => {
                Self::invalid("quantity", error)
            }
            MarketError::Rejected(error) => Self::Internal(error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use bidask_store::StoreError;

    use super::ApiError;

    /// SQLite's message names the table and column: the client learns
    /// that something exists, not how the schema is laid out.
    #[test]
    fn a_conflict_does_not_name_the_schema() {
        let error = ApiError::from(StoreError::Conflict {
            constraint: "UNIQUE constraint failed: products.sku".to_owned(),
        });
        assert_eq!(error.code(), "conflict");
        let message = error.to_string();
        assert!(!message.contains("sku"), "{message}");
        assert!(!message.contains("products"), "{message}");
    }
}
