//! What a run measured and how it is shown: latency histograms (kept in
//! microseconds, shown in milliseconds), error counts by kind, and the
//! `orders` report, printed as a readable summary and as the one JSON line
//! that ends the output for scripts and CI to read.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::error::LoadgenError;

/// Highest latency a histogram tells apart, in microseconds (one hour);
/// anything slower is recorded as this. Requests time out long before.
const MAX_TRACKED_MICROS: u64 = 3_600_000_000;

/// Latencies of one kind of request, in microseconds, to three significant
/// digits: fine enough for a p99.9 of loopback requests, small enough to
/// keep one per trader and merge at the end instead of sharing a lock.
#[derive(Debug, Clone)]
pub struct Latencies {
    histogram: Histogram<u64>,
}

/// Percentiles of one kind of request, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Requests timed (answered ones only; a transport failure has no
    /// latency to speak of).
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

/// Why a measured request did not do what it asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The server answered with this non-2xx status.
    Status(u16),
    /// No complete answer within the timeout.
    Timeout,
    /// Refused, reset, or not HTTP.
    Connection,
    /// A 2xx whose body is not what the contract describes.
    Decode,
    /// An order meant to rest that matched or was cancelled instead (the
    /// `fanout` publisher counts on one book change per order).
    NotResting,
}

/// Errors counted by kind, keyed for JSON (`http_422`, `timeout`, …) and in
/// a stable order, so two reports line up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ErrorCounts(BTreeMap<String, u64>);

/// Everything an `orders` run measured. Serialised as the last line of
/// the output; the field names are the JSON keys.
#[derive(Debug, Clone, Serialize)]
pub struct OrdersReport {
    /// Always `"orders"`, so a collector of several scenarios' lines can
    /// tell them apart.
    pub scenario: &'static str,
    /// The server measured.
    pub url: String,
    /// The usernames' prefix (`lg<run_id>-<i>`), to find the run's users
    /// and orders on the server afterwards.
    pub run_id: String,
    /// Seed of the order stream.
    pub seed: u64,
    /// Concurrent traders.
    pub traders: usize,
    /// Products traded on.
    pub products: usize,
    /// Markets (product and size) traded on.
    pub markets: usize,
    /// Length of the measured phase, from the first request to the last
    /// answer: the denominator of every rate.
    pub duration_s: f64,
    /// Requests a second on the open-loop timetable (`--rate`); `null` in
    /// a closed loop, where each trader sends when answered.
    pub offered_rate: Option<u32>,
    /// Requests the timetable had due within the run; `null` in a closed
    /// loop.
    pub offered: Option<u64>,
    /// Of `offered`, requests never sent because every trader was still
    /// waiting for an answer when the run ended: load the server was
    /// offered and did not get, and whose wait no percentile counts.
    /// `null` in a closed loop.
    pub unsent: Option<u64>,
    /// Open loop: how late requests left after they were due, 99th
    /// percentile. The generator's timer wakes on whole milliseconds, so
    /// up to about 1 ms of it is the generator's own (and counted in the
    /// latencies, which makes them err on the slow side); much more means
    /// the traders or the generator's CPU could not keep to the timetable.
    pub start_lag_p99_ms: Option<f64>,
    /// Open loop: the latest any request left.
    pub start_lag_max_ms: Option<f64>,
    /// Place and cancel requests sent.
    pub requests: u64,
    /// Place requests sent.
    pub place_requests: u64,
    /// Orders the server accepted (201).
    pub accepted: u64,
    /// Accepted orders per second: the headline figure.
    pub orders_per_sec: f64,
    /// Matches the accepted orders made on arrival.
    pub matches: u64,
    /// Accepted orders that self-trade prevention cut short; expected now
    /// and then, since every trader trades every market.
    pub self_trade_cancels: u64,
    /// Cancel requests sent.
    pub cancel_requests: u64,
    /// Orders cancelled (200).
    pub cancels: u64,
    /// Cancels per second.
    pub cancels_per_sec: f64,
    /// Cancels answered 409: the order had filled or gone first. Part of a
    /// realistic stream, so not an error.
    pub cancel_conflicts: u64,
    /// Latency of the orders placed (201s), median, in milliseconds: from
    /// sending on a ready connection to the answer in a closed loop, from
    /// when the request was due (connecting included) in an open loop.
    pub p50_ms: f64,
    /// Place latency, 99th percentile.
    pub p99_ms: f64,
    /// Place latency, 99.9th percentile.
    pub p999_ms: f64,
    /// Slowest place.
    pub max_ms: f64,
    /// Mean place latency.
    pub mean_ms: f64,
    /// Latency of the cancels done (200s; not the 409s), median.
    pub cancel_p50_ms: f64,
    /// Cancel latency, 99th percentile.
    pub cancel_p99_ms: f64,
    /// Cancel latency, 99.9th percentile.
    pub cancel_p999_ms: f64,
    /// Slowest cancel.
    pub cancel_max_ms: f64,
    /// Requests that failed: any non-2xx but a cancel's 409, transport
    /// failures, and unreadable 2xx bodies.
    pub errors: u64,
    /// Of `errors`, how many were 429s: a rate limiter, not a fault.
    pub rate_limited: u64,
    /// `errors` by kind.
    pub errors_by_kind: ErrorCounts,
    /// `errors` over `requests` (0 when nothing was sent), what
    /// `--max-error-rate` is compared with.
    pub error_rate: f64,
}

impl Latencies {
    /// An empty histogram.
    pub fn new() -> Result<Self, LoadgenError> {
        let histogram = Histogram::new_with_bounds(1, MAX_TRACKED_MICROS, 3)?;
        Ok(Self { histogram })
    }

    /// Records one request; sub-microsecond requests count as 1 µs and
    /// ones past the bound as the bound.
    pub fn record(&mut self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.histogram.saturating_record(micros.max(1));
    }

    /// Adds another trader's latencies to these.
    pub fn merge(&mut self, other: &Self) -> Result<(), LoadgenError> {
        self.histogram.add(&other.histogram)?;
        Ok(())
    }

    /// The percentiles, in milliseconds (all zero when nothing was recorded).
    pub fn summary(&self) -> LatencySummary {
        if self.histogram.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: self.histogram.len(),
            p50_ms: micros_to_ms(self.histogram.value_at_quantile(0.5)),
            p99_ms: micros_to_ms(self.histogram.value_at_quantile(0.99)),
            p999_ms: micros_to_ms(self.histogram.value_at_quantile(0.999)),
            max_ms: micros_to_ms(self.histogram.max()),
            mean_ms: self.histogram.mean() / 1_000.0,
        }
    }
}

/// Microseconds to milliseconds, kept fractional: loopback latencies are
/// often well under one millisecond.
pub fn micros_to_ms(micros: u64) -> f64 {
    micros as f64 / 1_000.0
}

impl ErrorKind {
    /// The key it is counted under.
    pub fn key(self) -> String {
        match self {
            Self::Status(status) => format!("http_{status}"),
            Self::Timeout => "timeout".to_owned(),
            Self::Connection => "connection".to_owned(),
            Self::Decode => "decode".to_owned(),
            Self::NotResting => "not_resting".to_owned(),
        }
    }
}

impl ErrorCounts {
    /// Counts one error.
    pub fn add(&mut self, kind: ErrorKind) {
        self.add_many(&kind.key(), 1);
    }

    /// Counts `count` errors under `key`.
    pub fn add_many(&mut self, key: &str, count: u64) {
        if count > 0 {
            *self.0.entry(key.to_owned()).or_default() += count;
        }
    }

    /// Adds another trader's counts to these.
    pub fn merge(&mut self, other: &Self) {
        for (key, count) in &other.0 {
            *self.0.entry(key.clone()).or_default() += count;
        }
    }

    /// All errors.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// How many of one kind.
    pub fn get(&self, kind: ErrorKind) -> u64 {
        self.0.get(&kind.key()).copied().unwrap_or(0)
    }

    /// `(key, count)` pairs in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0.iter().map(|(key, count)| (key.as_str(), *count))
    }

    /// `http_422 1, timeout 2`.
    pub fn listing(&self) -> String {
        let kinds: Vec<String> = self
            .iter()
            .map(|(key, count)| format!("{key} {count}"))
            .collect();
        kinds.join(", ")
    }

    /// `; by kind: http_422 1, timeout 2` for a summary line, or nothing
    /// when there were no errors.
    pub fn summary_suffix(&self) -> String {
        if self.0.is_empty() {
            return String::new();
        }
        format!("; by kind: {}", self.listing())
    }
}

/// What the binary does with any scenario's report: print the summary,
/// then the JSON line, and compare the error rate with the budget.
pub trait RunReport {
    /// The readable summary, several lines.
    fn summary_text(&self) -> String;
    /// The report as one line of JSON.
    fn json_line(&self) -> Result<String, LoadgenError>;
    /// Errors over attempts, between 0 and 1.
    fn error_rate(&self) -> f64;
}

impl RunReport for OrdersReport {
    fn summary_text(&self) -> String {
        OrdersReport::summary_text(self)
    }

    fn json_line(&self) -> Result<String, LoadgenError> {
        OrdersReport::json_line(self)
    }

    fn error_rate(&self) -> f64 {
        self.error_rate
    }
}

impl OrdersReport {
    /// Whether the run stayed within an error-rate budget (0..=1).
    pub fn within_error_budget(&self, max_error_rate: f64) -> bool {
        self.error_rate <= max_error_rate
    }

    /// The readable summary, several lines.
    pub fn summary_text(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail; the results are ignored.
        let _ = writeln!(
            text,
            "bidask-loadgen orders: {} traders on {} markets ({} products) at {} for {:.2} s (run {}, seed {})",
            self.traders,
            self.markets,
            self.products,
            self.url,
            self.duration_s,
            self.run_id,
            self.seed
        );
        if let (Some(rate), Some(offered)) = (self.offered_rate, self.offered) {
            let unsent = self.unsent.unwrap_or(0);
            let _ = writeln!(
                text,
                "  offered  {rate:>10}/s open loop, {offered} requests due; {unsent} unsent; start lag ms p99 {:.3} max {:.3}",
                self.start_lag_p99_ms.unwrap_or(0.0),
                self.start_lag_max_ms.unwrap_or(0.0)
            );
            if unsent > 0 {
                let _ = writeln!(
                    text,
                    "  note     the generator fell behind: {unsent} requests were never sent, and the percentiles below leave their wait out"
                );
            }
        }
        let _ = writeln!(
            text,
            "  orders   {:>10} accepted  {:>10.1}/s   of {} sent; {} matches, {} cut short by self-trade prevention",
            self.accepted,
            self.orders_per_sec,
            self.place_requests,
            self.matches,
            self.self_trade_cancels
        );
        let _ = writeln!(
            text,
            "  cancels  {:>10} done      {:>10.1}/s   of {} sent; {} already filled or gone (409)",
            self.cancels, self.cancels_per_sec, self.cancel_requests, self.cancel_conflicts
        );
        let _ = writeln!(
            text,
            "  place  latency ms   p50 {:>8.3}   p99 {:>8.3}   p99.9 {:>8.3}   max {:>8.3}   mean {:>8.3}",
            self.p50_ms, self.p99_ms, self.p999_ms, self.max_ms, self.mean_ms
        );
        let _ = writeln!(
            text,
            "  cancel latency ms   p50 {:>8.3}   p99 {:>8.3}   p99.9 {:>8.3}   max {:>8.3}",
            self.cancel_p50_ms, self.cancel_p99_ms, self.cancel_p999_ms, self.cancel_max_ms
        );
        let _ = write!(
            text,
            "  errors   {:>10} ({:.3}% of {} requests); rate limited (429) {}",
            self.errors,
            self.error_rate * 100.0,
            self.requests,
            self.rate_limited
        );
        text.push_str(&self.errors_by_kind.summary_suffix());
        text
    }

    /// The report as one line of JSON.
    pub fn json_line(&self) -> Result<String, LoadgenError> {
        serde_json::to_string(self).map_err(LoadgenError::Encode)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn sample_report() -> OrdersReport {
        let mut errors_by_kind = ErrorCounts::default();
        errors_by_kind.add(ErrorKind::Status(429));
        errors_by_kind.add(ErrorKind::Status(422));
        errors_by_kind.add(ErrorKind::Timeout);
        OrdersReport {
            scenario: "orders",
            url: "http://127.0.0.1:8080".to_owned(),
            run_id: "abc123".to_owned(),
            seed: 42,
            traders: 64,
            products: 5,
            markets: 50,
            duration_s: 10.0,
            offered_rate: Some(300),
            offered: Some(3_000),
            unsent: Some(0),
            start_lag_p99_ms: Some(0.4),
            start_lag_max_ms: Some(1.25),
            requests: 3_000,
            place_requests: 1_800,
            accepted: 1_797,
            orders_per_sec: 179.7,
            matches: 120,
            self_trade_cancels: 2,
            cancel_requests: 1_200,
            cancels: 1_100,
            cancels_per_sec: 110.0,
            cancel_conflicts: 100,
            p50_ms: 1.2,
            p99_ms: 4.5,
            p999_ms: 9.0,
            max_ms: 12.0,
            mean_ms: 1.4,
            cancel_p50_ms: 0.9,
            cancel_p99_ms: 3.0,
            cancel_p999_ms: 5.0,
            cancel_max_ms: 6.0,
            errors: 3,
            rate_limited: 1,
            errors_by_kind,
            error_rate: 0.001,
        }
    }

    #[test]
    fn the_json_line_has_the_keys_ci_reads() {
        let line = sample_report()
            .json_line()
            .map_err(|error| error.to_string());
        let Ok(line) = line else {
            panic!("the report does not encode: {line:?}");
        };
        assert!(!line.contains('\n'), "the JSON must be one line");
        let json: Value = match serde_json::from_str(&line) {
            Ok(json) => json,
            Err(error) => panic!("not JSON: {error}"),
        };
        for key in [
            "orders_per_sec",
            "p50_ms",
            "p99_ms",
            "p999_ms",
            "errors",
            "accepted",
            "cancels_per_sec",
            "matches",
            "duration_s",
            "traders",
            "rate_limited",
            "cancel_conflicts",
            "error_rate",
        ] {
            assert!(json[key].is_number(), "{key} is {:?}", json[key]);
        }
        assert_eq!(json["scenario"], "orders");
        assert_eq!(
            json["errors_by_kind"],
            serde_json::json!({"http_422": 1, "http_429": 1, "timeout": 1})
        );
    }

    #[test]
    fn the_summary_names_every_figure() {
        let text = sample_report().summary_text();
        for needle in [
            "179.7/s",
            "110.0/s",
            "p99.9",
            "120 matches",
            "rate limited (429) 1",
            "http_422 1",
            "300/s open loop",
            "max 1.250",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
        }
        assert!(!text.contains("fell behind"), "{text}");
    }

    #[test]
    fn the_summary_says_which_loop_it_was_and_what_went_unsent() {
        let closed = OrdersReport {
            offered_rate: None,
            offered: None,
            unsent: None,
            start_lag_p99_ms: None,
            start_lag_max_ms: None,
            ..sample_report()
        };
        assert!(!closed.summary_text().contains("offered"));
        let behind = OrdersReport {
            unsent: Some(120),
            ..sample_report()
        };
        let text = behind.summary_text();
        assert!(text.contains("120 unsent"), "{text}");
        assert!(text.contains("120 requests were never sent"), "{text}");
    }

    #[test]
    fn microseconds_become_fractional_milliseconds() {
        assert_eq!(micros_to_ms(0), 0.0);
        assert_eq!(micros_to_ms(1), 0.001);
        assert_eq!(micros_to_ms(1_500), 1.5);
        assert_eq!(micros_to_ms(2_000_000), 2_000.0);
    }

    #[test]
    fn latencies_report_percentiles_in_milliseconds() {
        let Ok(mut latencies) = Latencies::new() else {
            panic!("histogram bounds are valid");
        };
        assert_eq!(latencies.summary(), LatencySummary::default());
        for micros in 1..=1_000 {
            latencies.record(Duration::from_micros(micros));
        }
        let summary = latencies.summary();
        assert_eq!(summary.count, 1_000);
        assert!((summary.p50_ms - 0.5).abs() < 0.002, "{summary:?}");
        assert!((summary.p99_ms - 0.99).abs() < 0.002, "{summary:?}");
        assert!((summary.p999_ms - 0.999).abs() < 0.002, "{summary:?}");
        assert!((summary.max_ms - 1.0).abs() < 0.002, "{summary:?}");
    }

    #[test]
    fn merged_latencies_count_both_sides() {
        let (Ok(mut first), Ok(mut second)) = (Latencies::new(), Latencies::new()) else {
            panic!("histogram bounds are valid");
        };
        first.record(Duration::from_millis(1));
        second.record(Duration::from_millis(3));
        second.record(Duration::from_secs(7_200));
        assert!(first.merge(&second).is_ok());
        let summary = first.summary();
        assert_eq!(summary.count, 3);
        assert!(summary.max_ms >= 3_600_000.0 * 0.999, "{summary:?}");
    }

    #[test]
    fn error_budgets_compare_rates() {
        let report = sample_report();
        assert!(report.within_error_budget(1.0));
        assert!(report.within_error_budget(0.001));
        assert!(!report.within_error_budget(0.0));
    }
}
