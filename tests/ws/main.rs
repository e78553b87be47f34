//! The WebSocket feed end to end, with real tokio-tungstenite clients
//! against the server on port 0.

mod book;
mod feed;
mod limits;
mod protocol;
mod resume;
mod slow;
