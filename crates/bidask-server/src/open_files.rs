//! The open-file limit, which bounds the connections one process holds:
//! every connection, HTTP or WebSocket, is a file.
//!
//! Debian's and systemd's default soft limit is 1,024, far below the
//! 19,000 WebSocket connections the gateway takes by default. Past the
//! limit `accept` fails with `EMFILE` for every new connection, REST as
//! much as WebSocket, and the accept loop can only wait and retry. So
//! start-up raises the soft limit to the hard one (as Go's runtime does
//! for every program), and lowers the WebSocket bound to what the limit
//! leaves room for, so that an upgrade past it is refused with a clean
//! 503 while REST keeps its files.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Files kept for everything but WebSockets (REST connections, the
/// database pools and files, the runtime's own): a quarter of the limit,
/// at most 1,000, which leaves the default 19,000 WebSockets exactly
/// room under a limit of 20,000.
fn reserved(limit: u64) -> u64 {
    (limit / 4).min(1_000)
}

/// Raises the soft open-file limit to the hard one; returns the limit in
/// force afterwards, `None` when there is none.
pub fn raise() -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        return limit.current;
    }
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => {
            tracing::info!(
                from = limit.current,
                to = limit.maximum,
                "raised the open-file limit to its hard limit"
            );
            limit.maximum
        }
        Err(error) => {
            tracing::warn!(%error, limit = limit.current, "cannot raise the open-file limit");
            limit.current
        }
    }
}

/// The WebSocket bound `limit` leaves room for: `configured`, or less,
/// saying so.
pub fn websocket_room(configured: usize, limit: Option<u64>) -> usize {
    let Some(limit) = limit else {
        return configured;
    };
    let room = usize::try_from(limit - reserved(limit)).unwrap_or(usize::MAX);
    if configured <= room {
        return configured;
    }
    tracing::warn!(
        configured,
        open_file_limit = limit,
        room,
        "BIDASK_WS_MAX_CONNECTIONS is above what the open-file limit leaves room for; \
         WebSocket upgrades past the room are refused with 503 (raise the hard limit, \
         `ulimit -Hn` or LimitNOFILE=, to hold more)"
    );
    room
}

/// Files the process keeps for itself out of the reserve: the database
/// pools' connections and SQLite's files, the runtime's (epoll, the
/// listener), logs.
const OWN_FILES: u64 = 128;

/// The HTTP connections, before an upgrade, that the reserve leaves room
/// for (see [`crate::connections`]): what is left once the process's own
/// files are counted, at least 16; 0, no bound, without a limit.
pub fn http_room(limit: Option<u64>) -> usize {
    limit.map_or(0, |limit| {
        usize::try_from(reserved(limit).saturating_sub(OWN_FILES).max(16)).unwrap_or(usize::MAX)
    })
}

/// The share of `room` one client address may hold: `configured`, or a
/// quarter of the room if that is less (saying so), so that one address
/// cannot fill it alone; 0 (no share: a benchmark's clients on one
/// address) stays 0.
pub fn address_share(configured: usize, room: usize) -> usize {
    let quarter = room / 4;
    if room == 0 || configured == 0 || configured <= quarter {
        return configured;
    }
    tracing::warn!(
        configured,
        room,
        share = quarter,
        "BIDASK_HTTP_MAX_CONNECTIONS_PER_ADDRESS is above a quarter of the HTTP connections \
         the open-file limit leaves room for; one address holds at most that (raise the hard \
         limit, `ulimit -Hn` or LimitNOFILE=, to hold more)"
    );
    quarter
}

#[cfg(test)]
mod tests {
    use super::{address_share, http_room, websocket_room};

    #[test]
    fn http_connections_have_the_reserve_less_the_process_s_own_files() {
        assert_eq!(http_room(Some(20_000)), 872);
        assert_eq!(http_room(Some(1_024)), 128);
        assert_eq!(http_room(Some(100)), 16);
        assert_eq!(http_room(None), 0);
        assert_eq!(address_share(128, 872), 128);
        assert_eq!(address_share(512, 872), 218);
        assert_eq!(address_share(0, 872), 0);
        assert_eq!(address_share(128, 128), 32);
        assert_eq!(address_share(0, 0), 0);
        assert_eq!(address_share(500, 0), 500);
    }

    #[test]
    fn the_websocket_bound_leaves_files_for_the_rest() {
        assert_eq!(websocket_room(19_000, Some(20_000)), 19_000);
        assert_eq!(websocket_room(19_000, Some(1_024)), 768);
        assert_eq!(websocket_room(500, Some(1_024)), 500);
        assert_eq!(websocket_room(19_000, Some(100_000)), 19_000);
        assert_eq!(websocket_room(19_000, None), 19_000);
        assert_eq!(websocket_room(10, Some(0)), 0);
    }
}
