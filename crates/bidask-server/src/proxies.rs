//! `BIDASK_TRUSTED_PROXIES`: the reverse proxies whose `X-Forwarded-For`
//! names the client.
//!
//! The per-address limits (requests, password checks, feed connections)
//! count TCP peers. Behind a proxy every client is that one peer, so they
//! would all share one budget: five sign-ins per second for everyone.
//! Requests from a trusted proxy are counted by the address it says it
//! received them from instead. A client can write anything into the header
//! itself, so the list is read from the right, where the trusted proxies
//! appended what they saw, and the first address no trusted proxy owns is
//! the client. A request from any other peer is counted by that peer,
//! whatever its header says.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The header each proxy appends the address it received a request from to.
const FORWARDED_FOR: &str = "x-forwarded-for";

/// The trusted proxies: addresses or networks, comma-separated (none by
/// default). Each entry is checked when the setting is read, so that a typo
/// stops the server with a message naming it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl FromStr for TrustedProxies {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        text.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!(
                            "{entry:?} is not an address or a network: write 127.0.0.1, \
                             10.0.0.0/8 or fd00::/8"
                        )
                    })
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

impl TrustedProxies {
    /// Whether `address` is one of the proxies.
    pub(crate) fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|network| network.contains(&address))
    }

    /// The client of a request that came from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        // Several headers make one list, in order; it is read from its
        // end, and only as far as trusted proxies go: a client may send a
        // header of thousands of entries, which must cost nothing before
        // the rate limit it is read for. Split as bytes: a proxy appends
        // its entry to whatever the client sent, which need not be text,
        // and the entries on the right must still be read.
        let values: Vec<_> = headers.get_all(FORWARDED_FOR).iter().collect();
        let mut hops = values
            .into_iter()
            .rev()
            .flat_map(|value| value.as_bytes().rsplit(|byte| *byte == b','))
            .map(|hop| std::str::from_utf8(hop).ok().and_then(hop_address));
        let mut client = peer;
        // What a trusted proxy says it saw: the hop before it. An entry
        // that is not a bare address cannot be read past.
        while let Some(Some(address)) = hops.next() {
            client = address.to_canonical();
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

/// The address in one entry of the header: a bare address, or one with the
/// port the proxy saw it from (`203.0.113.5:4711`, `[2001:db8::7]:4711`),
/// which some proxies append.
fn hop_address(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|socket| socket.ip()))
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use axum::http::{HeaderMap, HeaderValue};

    use super::TrustedProxies;

    fn address(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    fn forwarded(values: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                "x-forwarded-for",
                HeaderValue::from_bytes(value).expect("a header value"),
            );
        }
        headers
    }

    #[test]
    fn the_setting_is_a_list_of_addresses_and_networks_and_a_bad_entry_names_itself() {
        let proxies: TrustedProxies = " 127.0.0.1, 10.0.0.0/8 ,fd00::/8,".parse().expect("valid");
        assert_eq!(proxies.0.len(), 3);
        assert_eq!("".parse::<TrustedProxies>(), Ok(TrustedProxies::default()));
        let refused = "10.0.0.0/8, proxy.example".parse::<TrustedProxies>();
        assert!(
            refused
                .as_ref()
                .is_err_and(|message| message.contains("\"proxy.example\"")),
            "{refused:?}"
        );
    }

    #[test]
    fn only_a_trusted_peer_is_believed_and_only_up_to_the_first_untrusted_hop() {
        let proxies: TrustedProxies = "127.0.0.1, 10.0.0.0/8".parse().expect("valid");
        let client =
            |peer: &str, values: &[&[u8]]| proxies.client(address(peer), &forwarded(values));
        // Anyone else's header is theirs to invent.
        assert_eq!(
            client("198.51.100.9", &[b"203.0.113.5"]),
            address("198.51.100.9")
        );
        // One trusted proxy.
        assert_eq!(
            client("127.0.0.1", &[b"203.0.113.5"]),
            address("203.0.113.5")
        );
        // A client that forged an entry before the proxy's: the proxy's
        // entry, on the right, is the one that counts.
        assert_eq!(
            client("127.0.0.1", &[b"192.0.2.1, 203.0.113.5"]),
            address("203.0.113.5")
        );
        // A chain of trusted proxies, over two headers.
        assert_eq!(
            client("127.0.0.1", &[b"203.0.113.5, 10.1.2.3", b"10.9.9.9"]),
            address("203.0.113.5")
        );
        // No header: the proxy itself.
        assert_eq!(client("127.0.0.1", &[]), address("127.0.0.1"));
        // Garbage stops the walk at the last address a proxy vouched for.
        assert_eq!(
            client("127.0.0.1", &[b"203.0.113.5, junk, 10.1.2.3"]),
            address("10.1.2.3")
        );
        assert_eq!(
            client("127.0.0.1", &[b"203.0.113.5", b"\xff"]),
            address("127.0.0.1")
        );
        // What the client sent need not be text; the proxy's entry after it
        // still counts.
        assert_eq!(
            client("127.0.0.1", &[b"\xff, 203.0.113.5"]),
            address("203.0.113.5")
        );
        // Entries with the port the proxy saw the client's connection from.
        assert_eq!(
            client("127.0.0.1", &[b"203.0.113.5:4711"]),
            address("203.0.113.5")
        );
        assert_eq!(
            client("127.0.0.1", &[b"[2001:db8::7]:4711, 10.1.2.3:80"]),
            address("2001:db8::7")
        );
        // An IPv4 peer seen through an IPv6 socket is still that peer.
        assert_eq!(
            client("::ffff:127.0.0.1", &[b"2001:db8::7"]),
            address("2001:db8::7")
        );
    }
}
