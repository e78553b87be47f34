//! The source of the events the `fanout` subscribers receive: `--rate`
//! of them a second, from one sequential publisher.
//!
//! Against bidask the publisher is a trader placing resting bids over
//! REST, far below any ask, on a ring of [`PRICE_LEVELS`] prices: every
//! order changes exactly one bid level, so it causes exactly one
//! `BID_UPDATED` on the product's channel, stamped by the server when it
//! commits. The ring keeps the book at most that many levels deep (orders
//! past the first round join a level instead of opening one), so the
//! snapshot a subscriber gets stays the same size however long the run.
//!
//! Against the Node.js baseline it POSTs messages shaped like those
//! events (same keys, same book arithmetic) for the baseline to stamp
//! when it receives them and broadcast: each server stamps its events when
//! it accepts them, so both are timed from the same point.
//!
//! Publishing is sequential: the next event waits for the previous answer.
//! That keeps a baseline's `seq` in order (there is one writer), and a
//! server that answers slower than the rate gets fewer events instead of
//! an ever-growing queue; the ticks it could not take are counted as
//! missed, and the rate actually offered is in the report.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use crate::api::{ApiClient, NewOrder, Placed, Side};
use crate::catalog::{self, Market};
use crate::clock;
use crate::error::LoadgenError;
use crate::http::{HttpClient, Outgoing, ServerUrl};
use crate::price::Price;
use crate::report::{ErrorCounts, ErrorKind, Latencies};
use crate::users::{self, RunId, Session};

/// Distinct bid prices the publisher cycles through: at most this many
/// levels, within the snapshot's depth of 100.
pub const PRICE_LEVELS: usize = 50;
/// The lowest bid, in cents: far below anything a sneaker asks.
const LOWEST_BID_CENTS: i64 = 100;

/// Where the events come from.
#[derive(Debug)]
pub enum Publisher {
    /// Resting bids on the bidask server.
    Orders(OrderSource),
    /// Event-shaped messages for the Node.js baseline to broadcast.
    Node(NodeSource),
}

/// A trader placing the bids.
#[derive(Debug)]
pub struct OrderSource {
    api: ApiClient,
    session: Session,
    market: Market,
    prices: Vec<Price>,
}

/// The baseline's publisher and the book its messages describe.
#[derive(Debug)]
pub struct NodeSource {
    http: HttpClient,
    /// The publish endpoint's path on the baseline server.
    path: String,
    product_id: i64,
    size: String,
    seq: i64,
    /// Units resting at each ring price.
    levels: Vec<u64>,
    prices: Vec<String>,
}

/// What publishing did over the measured window.
#[derive(Debug, Clone)]
pub struct PublishTally {
    /// Events the publisher tried to cause.
    pub attempts: u64,
    /// Of those, events the server confirmed: orders accepted and resting,
    /// messages taken for broadcast.
    pub published: u64,
    /// Ticks of the schedule that came while the previous event was still
    /// unanswered, and were skipped.
    pub missed_ticks: u64,
    /// Attempts that failed, by kind.
    pub errors: ErrorCounts,
    /// From sending an event to its answer (for bidask: the order's REST
    /// round trip, commit included).
    pub latency: Latencies,
}

impl Publisher {
    /// A trader on the bidask server at `api`, bidding on `product` (or
    /// the catalog's first product) in its first size.
    pub async fn orders(
        api: ApiClient,
        run_id: &RunId,
        product: Option<i64>,
    ) -> Result<Self, LoadgenError> {
        let catalog = catalog::fetch(&api).await?;
        let market = catalog
            .markets
            .iter()
            .find(|market| product.is_none_or(|product| market.product_id == product))
            .cloned()
            .ok_or_else(|| LoadgenError::UnknownProduct {
                product: product.unwrap_or_default(),
                url: api.base_url().to_owned(),
            })?;
        let session = users::sign_in(&api, run_id.username(0)).await?;
        let lowest = market.tick.at_least(LOWEST_BID_CENTS).ticks();
        let prices = (0..PRICE_LEVELS as u64)
            .map(|step| market.tick.price_at(lowest + step))
            .collect();
        Ok(Self::Orders(OrderSource {
            api,
            session,
            market,
            prices,
        }))
    }

    /// A publisher POSTing to the baseline's `url`, describing a bid book
    /// of `product` size 10.
    pub async fn node(url: &str, product: i64, timeout: Duration) -> Result<Self, LoadgenError> {
        let url = ServerUrl::parse(url)?;
        let http = HttpClient::new(&url, timeout).await?;
        let path = match url.prefix() {
            "" => "/".to_owned(),
            path => path.to_owned(),
        };
        let prices = (0..PRICE_LEVELS as i64)
            .map(|step| {
                let cents = LOWEST_BID_CENTS + step;
                format!("{}.{:02}", cents / 100, cents % 100)
            })
            .collect();
        Ok(Self::Node(NodeSource {
            http,
            path,
            product_id: product,
            size: "10".to_owned(),
            seq: 0,
            levels: vec![0; PRICE_LEVELS],
            prices,
        }))
    }

    /// The product whose channel the events go to.
    pub fn product_id(&self) -> i64 {
        match self {
            Self::Orders(source) => source.market.product_id,
            Self::Node(source) => source.product_id,
        }
    }

    /// Publishes event number `index` and records how it went.
    async fn publish(&mut self, index: usize, tally: &mut PublishTally) {
        tally.attempts += 1;
        let outcome = match self {
            Self::Orders(source) => source.place(index).await,
            Self::Node(source) => source.post(index).await,
        };
        match outcome {
            Ok(elapsed) => {
                tally.published += 1;
                tally.latency.record(elapsed);
            }
            Err((kind, elapsed)) => {
                tally.errors.add(kind);
                if let Some(elapsed) = elapsed {
                    tally.latency.record(elapsed);
                }
            }
        }
    }
}

/// An attempt's failure and, if it was answered, how long that took.
type Failure = (ErrorKind, Option<Duration>);

impl OrderSource {
    async fn place(&self, index: usize) -> Result<Duration, Failure> {
        let price = self.prices[index % self.prices.len()];
        let order = NewOrder {
            product_id: self.market.product_id,
            size: &self.market.size,
            price: price.to_string(),
            quantity: 1,
            time_in_force: None,
        };
        let answer = self
            .api
            .place(&self.session.token, Side::Bid, &order)
            .await
            .map_err(|failure| (crate::orders::transport_error(&failure), None))?;
        let elapsed = Some(answer.elapsed);
        if !answer.is_success() {
            return Err((ErrorKind::Status(answer.status), elapsed));
        }
        match answer.json::<Placed>() {
            // A bid that matched or was cancelled caused other events than
            // the one `BID_UPDATED` counted on.
            Ok(placed) if placed.order.is_resting() && placed.match_count() == 0 => {
                Ok(answer.elapsed)
            }
            Ok(_) => Err((ErrorKind::NotResting, elapsed)),
            Err(_) => Err((ErrorKind::Decode, elapsed)),
        }
    }
}

impl NodeSource {
    /// The message of event number `index`, stamped `ts_micros`: the
    /// book's level at the ring price gains a unit, as a resting bid would
    /// add it.
    fn next_message(&mut self, index: usize, ts_micros: i64) -> String {
        let level = index % self.levels.len();
        self.levels[level] += 1;
        self.seq += 1;
        let highest = self
            .levels
            .iter()
            .rposition(|units| *units > 0)
            .unwrap_or(level);
        format!(
            r#"{{"type":"BID_UPDATED","channel":"product:{product}","seq":{seq},"ts":"{ts}","product_id":{product},"size":"{size}","price":"{price}","quantity":{quantity},"orders":{quantity},"highest_bid":{{"price":"{best}","quantity":{best_quantity}}}}}"#,
            product = self.product_id,
            seq = self.seq,
            ts = clock::format_micros(ts_micros),
            size = self.size,
            price = self.prices[level],
            quantity = self.levels[level],
            best = self.prices[highest],
            best_quantity = self.levels[highest],
        )
    }

    async fn post(&mut self, index: usize) -> Result<Duration, Failure> {
        let message = self.next_message(index, clock::now_micros());
        let sent = self
            .http
            .send(Outgoing::post(&self.path).json(message))
            .await;
        let answer = sent.map_err(|failure| (crate::orders::transport_error(&failure), None))?;
        if answer.is_success() {
            Ok(answer.elapsed)
        } else {
            Err((ErrorKind::Status(answer.status), Some(answer.elapsed)))
        }
    }
}

/// Publishes at `rate` events a second until `duration` has passed (a
/// rate of 0 publishes nothing and only waits), adding each confirmed
/// event to `live` for the progress bar.
pub async fn run_schedule(
    publisher: &mut Publisher,
    rate: u32,
    duration: Duration,
    live: &AtomicU64,
) -> Result<PublishTally, LoadgenError> {
    let mut tally = PublishTally {
        attempts: 0,
        published: 0,
        missed_ticks: 0,
        errors: ErrorCounts::default(),
        latency: Latencies::new()?,
    };
    let deadline = tokio::time::Instant::now() + duration;
    if rate == 0 {
        tokio::time::sleep_until(deadline).await;
        return Ok(tally);
    }
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / rate);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut index = 0;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => break,
            _ = ticks.tick() => {}
        }
        publisher.publish(index, &mut tally).await;
        index += 1;
        live.store(tally.published, Ordering::Relaxed);
        if tokio::time::Instant::now() >= deadline {
            break;
        }
    }
    let due = (duration.as_secs_f64() * f64::from(rate)).floor() as u64;
    tally.missed_ticks = due.saturating_sub(tally.attempts);
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_baselines_messages_look_like_the_servers_events() {
        let Ok(Publisher::Node(mut source)) =
            Publisher::node("http://127.0.0.1:1/publish", 7, Duration::from_secs(1)).await
        else {
            panic!("a node publisher");
        };
        let ts = 1_795_316_645_123_456;
        let mut last = String::new();
        for index in [3, 9, 3] {
            last = source.next_message(index, ts);
        }
        let json: serde_json::Value = match serde_json::from_str(&last) {
            Ok(json) => json,
            Err(error) => panic!("{last} is not JSON: {error}"),
        };
        assert_eq!(
            json,
            serde_json::json!({
                "type": "BID_UPDATED", "channel": "product:7", "seq": 3,
                "ts": "2026-11-22T03:04:05.123456Z", "product_id": 7, "size": "10",
                "price": "1.03", "quantity": 2, "orders": 2,
                "highest_bid": {"price": "1.09", "quantity": 1},
            })
        );
        assert_eq!(
            crate::feed_message::classify(&last),
            crate::feed_message::FeedMessage::Event {
                seq: Some(3),
                ts_micros: Some(ts)
            }
        );
    }
}
