//! What a `fanout` run measured, printed as a readable summary and as the
//! one JSON line that ends the output.

use std::fmt::Write as _;

use serde::Serialize;

use crate::error::LoadgenError;
use crate::report::{ErrorCounts, RunReport};

/// Everything a `fanout` run measured; the field names are the JSON keys.
/// Figures about the server process are `null` without `--server-pid`.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutReport {
    /// Always `"fanout"`.
    pub scenario: &'static str,
    /// `bidask` or `node`: which server delivered the messages.
    pub target: &'static str,
    /// The server's base URL.
    pub url: String,
    /// The product whose channel every client subscribed to.
    pub product_id: i64,
    /// Clients asked for.
    pub clients: usize,
    /// Loopback source addresses the clients were spread over (0: the
    /// kernel chose).
    pub source_addresses: usize,
    /// Events per second asked for.
    pub rate: u32,
    /// Length of the measured window: the denominator of every rate.
    pub duration_s: f64,
    /// Connections subscribed and still open at the end of the window:
    /// the headline "connections held".
    pub connections: usize,
    /// Clients that got subscribed during setup.
    pub subscribed: usize,
    /// Clients that never got subscribed, stalled ones included (their
    /// failures are counted under `stalled_` keys).
    pub setup_failures: u64,
    /// Subscribed connections that ended before the run did.
    pub disconnects: u64,
    /// Of those, how many the server closed as slow consumers (4008).
    pub slow_consumer_closes: u64,
    /// Clients asked for that subscribed and then never read.
    pub stalled_clients: usize,
    /// Of those, how many got subscribed.
    pub stalled_subscribed: usize,
    /// How the subscribed stalled clients' connections had ended when
    /// they read again after the run: `slow_consumer` (closed with 4008),
    /// `closed_<code>`, `broken`, or `still_open`.
    pub stalled_endings: ErrorCounts,
    /// Events the publisher got confirmed in the window (orders accepted
    /// and resting; messages taken by the baseline).
    pub events_published: u64,
    /// `events_published` per second: the rate actually offered.
    pub events_per_sec: f64,
    /// Schedule ticks skipped because the previous event was unanswered.
    pub publish_missed_ticks: u64,
    /// Publish attempts that failed.
    pub publish_errors: u64,
    /// Publish round trip, median, in milliseconds.
    pub publish_p50_ms: f64,
    /// Publish round trip, 99th percentile.
    pub publish_p99_ms: f64,
    /// Events received by all clients within the window, each once per
    /// client: a repeat is counted in `out_of_order` instead.
    pub messages_delivered: u64,
    /// `messages_delivered` per second: the headline throughput.
    pub messages_per_sec: f64,
    /// `events_published` times the connections held when the window
    /// opened: what full delivery would be.
    pub expected_messages: u64,
    /// Events received after the window, while draining.
    pub late_messages: u64,
    /// (`messages_delivered` + `late_messages`) / `expected_messages`.
    pub delivery_ratio: f64,
    /// Events skipped in some client's `seq` sequence.
    pub missing: u64,
    /// Events that came with a `seq` not above the previous one.
    pub out_of_order: u64,
    /// Events received with no readable `ts` (counted, not timed).
    pub untimed: u64,
    /// Heartbeats received by all clients over the whole run.
    pub heartbeats: u64,
    /// Events timed: those received in the window and while draining.
    pub latency_samples: u64,
    /// From the event's `ts` to its receipt, median, in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
    /// The server process measured.
    pub server_pid: Option<u32>,
    /// Its resident memory before any client connected.
    pub server_rss_before_bytes: Option<u64>,
    /// Its resident memory with the first half of the clients connected,
    /// subscribed and idle for the settle time.
    pub server_rss_half_bytes: Option<u64>,
    /// The same with every client connected.
    pub server_rss_connected_bytes: Option<u64>,
    /// Its resident memory at the end of the window, under load.
    pub server_rss_loaded_bytes: Option<u64>,
    /// What one more idle connection costs the server: the larger of the
    /// next two.
    pub server_bytes_per_connection: Option<f64>,
    /// (connected − before) / connections held.
    pub server_bytes_per_connection_from_idle: Option<f64>,
    /// (connected − half) / the connections added in between.
    pub server_bytes_per_connection_second_half: Option<f64>,
    /// Its CPU over the window, in percent of one core.
    pub server_cpu_percent: Option<f64>,
    /// The load generator's own CPU over the window, percent of one core.
    pub loadgen_cpu_percent: Option<f64>,
    /// Setup failures, disconnects, error messages, publish errors, and
    /// deliveries that failed: expected events that never arrived
    /// (`undelivered`) and events that arrived again (`out_of_order`).
    pub errors: u64,
    /// `errors` by kind.
    pub errors_by_kind: ErrorCounts,
    /// `errors` over clients, publish attempts and expected messages.
    pub error_rate: f64,
}

impl RunReport for FanoutReport {
    fn summary_text(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail; the results are ignored.
        let _ = writeln!(
            text,
            "bidask-loadgen fanout: {} clients on product:{} of {} ({}) from {} source addresses, {} events/s asked, {:.2} s measured",
            self.clients,
            self.product_id,
            self.target,
            self.url,
            self.source_addresses,
            self.rate,
            self.duration_s
        );
        let _ = writeln!(
            text,
            "  connections {:>8} held at the end   {} subscribed, {} failed setup, {} lost ({} slow-consumer closes)",
            self.connections,
            self.subscribed,
            self.setup_failures,
            self.disconnects,
            self.slow_consumer_closes
        );
        if self.stalled_clients > 0 {
            let _ = writeln!(
                text,
                "  stalled     {:>8} never read       {} subscribed; their endings: {}",
                self.stalled_clients,
                self.stalled_subscribed,
                self.stalled_endings.listing()
            );
        }
        let _ = writeln!(
            text,
            "  events      {:>8} published  {:>10.1}/s   {} ticks missed, {} errors; publish p50 {:.3} ms p99 {:.3} ms",
            self.events_published,
            self.events_per_sec,
            self.publish_missed_ticks,
            self.publish_errors,
            self.publish_p50_ms,
            self.publish_p99_ms
        );
        let _ = writeln!(
            text,
            "  messages    {:>8} delivered  {:>10.1}/s   {:.4} of expected {} (with {} late); {} missing, {} out of order; {} heartbeats",
            self.messages_delivered,
            self.messages_per_sec,
            self.delivery_ratio,
            self.expected_messages,
            self.late_messages,
            self.missing,
            self.out_of_order,
            self.heartbeats
        );
        let _ = writeln!(
            text,
            "  latency ms  p50 {:>8.3}   p99 {:>8.3}   p99.9 {:>8.3}   max {:>8.3}   mean {:>8.3}   ({} events, ts to receipt)",
            self.p50_ms, self.p99_ms, self.p999_ms, self.max_ms, self.mean_ms, self.latency_samples
        );
        match (
            self.server_rss_before_bytes,
            self.server_rss_connected_bytes,
            self.server_bytes_per_connection,
        ) {
            (Some(before), Some(connected), Some(per_connection)) => {
                let _ = writeln!(
                    text,
                    "  server      RSS {:.1} MiB idle -> {} half connected -> {:.1} MiB connected -> {} loaded: {:.0} bytes ({:.2} KiB) per connection (from idle {}, over the second half {}); CPU {}",
                    mebibytes(before),
                    optional_mebibytes(self.server_rss_half_bytes),
                    mebibytes(connected),
                    optional_mebibytes(self.server_rss_loaded_bytes),
                    per_connection,
                    per_connection / 1_024.0,
                    optional_bytes(self.server_bytes_per_connection_from_idle),
                    optional_bytes(self.server_bytes_per_connection_second_half),
                    percent(self.server_cpu_percent)
                );
            }
            _ => {
                let _ = writeln!(text, "  server      not measured (no --server-pid)");
            }
        }
        let _ = write!(
            text,
            "  errors      {:>8} ({:.3}%); load generator CPU {}",
            self.errors,
            self.error_rate * 100.0,
            percent(self.loadgen_cpu_percent)
        );
        text.push_str(&self.errors_by_kind.summary_suffix());
        text
    }

    fn json_line(&self) -> Result<String, LoadgenError> {
        serde_json::to_string(self).map_err(LoadgenError::Encode)
    }

    fn error_rate(&self) -> f64 {
        self.error_rate
    }
}

fn mebibytes(bytes: u64) -> f64 {
    bytes as f64 / (1_024.0 * 1_024.0)
}

fn optional_mebibytes(bytes: Option<u64>) -> String {
    bytes.map_or("?".to_owned(), |bytes| {
        format!("{:.1} MiB", mebibytes(bytes))
    })
}

fn optional_bytes(bytes: Option<f64>) -> String {
    bytes.map_or("?".to_owned(), |bytes| format!("{bytes:.0} B"))
}

fn percent(value: Option<f64>) -> String {
    value.map_or("?".to_owned(), |value| format!("{value:.0}% of a core"))
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn sample() -> FanoutReport {
        let mut errors_by_kind = ErrorCounts::default();
        errors_by_kind.add_many("http_503", 2);
        let mut stalled_endings = ErrorCounts::default();
        stalled_endings.add_many("slow_consumer", 99);
        stalled_endings.add_many("still_open", 1);
        FanoutReport {
            scenario: "fanout",
            target: "bidask",
            url: "http://127.0.0.1:8080".to_owned(),
            product_id: 1,
            clients: 10_000,
            source_addresses: 4,
            rate: 25,
            duration_s: 20.0,
            connections: 9_998,
            subscribed: 9_998,
            setup_failures: 2,
            disconnects: 0,
            slow_consumer_closes: 0,
            stalled_clients: 100,
            stalled_subscribed: 100,
            stalled_endings,
            events_published: 500,
            events_per_sec: 25.0,
            publish_missed_ticks: 0,
            publish_errors: 0,
            publish_p50_ms: 3.0,
            publish_p99_ms: 9.0,
            messages_delivered: 4_999_000,
            messages_per_sec: 249_950.0,
            expected_messages: 4_999_000,
            late_messages: 0,
            delivery_ratio: 1.0,
            missing: 0,
            out_of_order: 0,
            untimed: 0,
            heartbeats: 40_000,
            latency_samples: 4_999_000,
            p50_ms: 4.0,
            p99_ms: 20.0,
            p999_ms: 30.0,
            max_ms: 40.0,
            mean_ms: 5.0,
            server_pid: Some(42),
            server_rss_before_bytes: Some(20 << 20),
            server_rss_half_bytes: Some(45 << 20),
            server_rss_connected_bytes: Some(70 << 20),
            server_rss_loaded_bytes: Some(80 << 20),
            server_bytes_per_connection: Some(5_243.0),
            server_bytes_per_connection_from_idle: Some(5_243.0),
            server_bytes_per_connection_second_half: Some(5_100.0),
            server_cpu_percent: Some(120.0),
            loadgen_cpu_percent: Some(60.0),
            errors: 2,
            errors_by_kind,
            error_rate: 0.0002,
        }
    }

    #[test]
    fn the_json_line_has_the_keys_the_benchmark_reads() {
        let Ok(line) = sample().json_line() else {
            panic!("the report encodes");
        };
        assert!(!line.contains('\n'));
        let json: Value = match serde_json::from_str(&line) {
            Ok(json) => json,
            Err(error) => panic!("not JSON: {error}"),
        };
        for key in [
            "connections",
            "messages_per_sec",
            "p50_ms",
            "p99_ms",
            "p999_ms",
            "server_bytes_per_connection",
            "errors",
            "disconnects",
            "duration_s",
            "events_published",
        ] {
            assert!(json[key].is_number(), "{key} is {:?}", json[key]);
        }
        assert_eq!(json["scenario"], "fanout");
        assert_eq!(json["errors_by_kind"], serde_json::json!({"http_503": 2}));
        assert_eq!(
            json["stalled_endings"],
            serde_json::json!({"slow_consumer": 99, "still_open": 1})
        );
    }

    #[test]
    fn the_summary_names_every_figure() {
        let text = sample().summary_text();
        for needle in [
            "249950.0/s",
            "p99.9",
            "9998 held",
            "5243 bytes",
            "http_503 2",
            "100 never read",
            "slow_consumer 99, still_open 1",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
        }
    }
}
