//! The HTTP connections the server holds before their upgrade, by client
//! address and in all, and the answer to one past either bound.
//!
//! Every connection is a file descriptor. The open-file limit keeps a
//! reserve beside the WebSockets for REST and for the process's own files
//! (see [`crate::open_files`]); without a bound of their own, connections
//! that send a request now and then, or read their answers slowly, could
//! fill it and take the database's connections and every accept with it.
//! So the connections in HTTP are bounded in all by what the reserve
//! leaves, and one client address (an IPv6 /64 counts as one) may hold a
//! share of that; trusted proxies are counted in all only, since every
//! client behind them shares their address. Many addresses together can
//! still fill the HTTP room, but not the WebSockets' or the database's.
//! A WebSocket gives its place back when it is upgraded: the gateway
//! counts and bounds those.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its address holds its share.
    Address,
    /// The server holds all it has room for.
    Server,
}

impl Refusal {
    /// The whole answer, in the contract's shape: a client that reads it
    /// knows to come back, rather than seeing a connection reset.
    fn response(self) -> &'static [u8] {
        match self {
            Self::Address => ADDRESS_FULL.as_bytes(),
            Self::Server => SERVER_FULL.as_bytes(),
        }
    }
}

const ADDRESS_FULL: &str = concat!(
    "HTTP/1.1 503 Service Unavailable\r\n",
    "content-type: application/json\r\n",
    "retry-after: 1\r\n",
    "connection: close\r\n",
    "content-length: 107\r\n",
    "\r\n",
    r#"{"error":{"code":"at_capacity","message":"this address holds all the connections it may; close one first"}}"#,
);

const SERVER_FULL: &str = concat!(
    "HTTP/1.1 503 Service Unavailable\r\n",
    "content-type: application/json\r\n",
    "retry-after: 1\r\n",
    "connection: close\r\n",
    "content-length: 101\r\n",
    "\r\n",
    r#"{"error":{"code":"at_capacity","message":"the server holds all the connections it can; retry later"}}"#,
);

/// Refused connections answered at once: each is kept open for at most
/// [`LINGER`] so that its answer is read, and past this many the rest are
/// closed without one, so that refusing cannot itself take the files.
const LINGERING: usize = 32;
/// How long a refused connection is kept open after its answer.
const LINGER: Duration = Duration::from_secs(1);

/// The connections held.
#[derive(Debug)]
pub struct Holders {
    counts: Mutex<Counts>,
    per_address: usize,
    room: usize,
    lingering: Arc<Semaphore>,
}

#[derive(Debug, Default)]
struct Counts {
    by_address: HashMap<IpAddr, usize>,
    all: usize,
}

impl Holders {
    /// At most `room` connections in all and `per_address` from one
    /// address (0: no bound of that kind).
    pub fn new(per_address: usize, room: usize) -> Arc<Self> {
        Arc::new(Self {
            counts: Mutex::default(),
            per_address,
            room,
            lingering: Arc::new(Semaphore::new(LINGERING)),
        })
    }

    /// A place for one more connection, from `address` (a client key),
    /// or from a trusted proxy (`None`), counted in all only.
    pub fn take(self: &Arc<Self>, address: Option<IpAddr>) -> Result<Held, Refusal> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if self.room > 0 && counts.all >= self.room {
            return Err(Refusal::Server);
        }
        if let Some(address) = address {
            let count = counts.by_address.entry(address).or_insert(0);
            if self.per_address > 0 && *count >= self.per_address {
                // No entry at 0 is left behind: one over the bound had
                // `per_address` before it.
                return Err(Refusal::Address);
            }
            *count += 1;
        }
        counts.all += 1;
        Ok(Held {
            holders: Arc::clone(self),
            address,
        })
    }

    /// Answers `stream` with `refusal` and closes it, counting it.
    pub fn refuse(&self, stream: TcpStream, refusal: Refusal) {
        metrics::counter!("bidask_http_connections_refused_total").increment(1);
        // A fresh socket's send buffer has room for the answer.
        let _ = stream.try_write(refusal.response());
        let Ok(permit) = Arc::clone(&self.lingering).try_acquire_owned() else {
            return;
        };
        tokio::spawn(async move {
            let _permit = permit;
            let mut stream = stream;
            // Closing with the request unread would reset the connection,
            // and the client could lose the answer before reading it.
            let _ = tokio::time::timeout(LINGER, async {
                let _ = stream.shutdown().await;
                let mut sink = [0; 1024];
                while matches!(stream.read(&mut sink).await, Ok(read) if read > 0) {}
            })
            .await;
        });
    }
}

/// One connection's place; dropping it gives the place back.
#[derive(Debug)]
pub struct Held {
    holders: Arc<Holders>,
    address: Option<IpAddr>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut counts = self
            .holders
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        counts.all -= 1;
        if let Some(address) = self.address
            && let Some(count) = counts.by_address.get_mut(&address)
        {
            *count -= 1;
            if *count == 0 {
                counts.by_address.remove(&address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([192, 0, 2, last]))
    }

    #[test]
    fn the_answers_are_whole_responses_in_the_contract_s_shape() {
        for refusal in [Refusal::Address, Refusal::Server] {
            let text = std::str::from_utf8(refusal.response()).expect("text");
            let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length: "))
                .and_then(|length| length.parse::<usize>().ok());
            assert_eq!(length, Some(body.len()), "{head}");
            let body: serde_json::Value = serde_json::from_str(body).expect("JSON");
            assert_eq!(body["error"]["code"], "at_capacity");
        }
    }

    #[test]
    fn an_address_holds_its_share_and_all_hold_the_room() {
        let holders = Holders::new(2, 3);
        let first = holders.take(address(1)).expect("a place");
        let _second = holders.take(address(1)).expect("a place");
        assert_eq!(holders.take(address(1)).err(), Some(Refusal::Address));
        let _third = holders.take(address(2)).expect("a place");
        // The room is full: for anyone, a proxy too.
        assert_eq!(holders.take(address(3)).err(), Some(Refusal::Server));
        assert_eq!(holders.take(None).err(), Some(Refusal::Server));
        drop(first);
        let _proxied = holders.take(None).expect("the place given back");
        assert_eq!(holders.take(address(1)).err(), Some(Refusal::Server));
    }

    #[test]
    fn places_given_back_leave_no_entries() {
        let holders = Holders::new(1, 0);
        let held: Vec<Held> = (1..=50)
            .map(|last| holders.take(address(last)).expect("a place"))
            .collect();
        assert_eq!(holders.take(address(1)).err(), Some(Refusal::Address));
        drop(held);
        let counts = holders.counts.lock().expect("counts");
        assert!(counts.by_address.is_empty());
        assert_eq!(counts.all, 0);
    }
}
