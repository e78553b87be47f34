//! The process's Prometheus recorder, and what each of its metrics means.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// One Prometheus recorder per process, shared by every application in it
/// (tests start several).
pub(crate) fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // Latencies in seconds; batch sizes in commands; a feed
            // connection's queue in frames.
            let seconds = [
                0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                0.5, 1.0, 2.5,
            ];
            let units = [
                1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1_024.0, 2_048.0,
            ];
            let frames = [
                0.0, 1.0, 4.0, 16.0, 64.0, 256.0, 1_024.0, 4_096.0, 16_384.0, 65_536.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets(&seconds)
                .and_then(|builder| {
                    builder.set_buckets_for_metric(
                        Matcher::Full("bidask_commit_batch_units".to_owned()),
                        &units,
                    )
                })
                .and_then(|builder| {
                    builder.set_buckets_for_metric(
                        Matcher::Full("bidask_ws_queue_depth".to_owned()),
                        &frames,
                    )
                })
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (a test harness);
            // then this handle renders nothing, which is all we can do.
            if metrics::set_global_recorder(recorder).is_ok() {
                describe();
            }
            // Histogram samples pile up until they are folded into their
            // buckets; without a scraper nobody would fold them.
            let upkeep = handle.clone();
            let _ = std::thread::Builder::new()
                .name("bidask-metrics".to_owned())
                .spawn(move || {
                    loop {
                        std::thread::sleep(Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                });
            handle
        })
        .clone()
}

/// Says what each metric counts, and starts every counter and gauge
/// without labels at 0 (the exporter shows a histogram only once it has a
/// sample): a series appeared only with its first event, and an alert on
/// `rate(bidask_commit_failures_total[5m])` or on a missing
/// `bidask_ws_connections` saw nothing at all until then.
fn describe() {
    // (name, whether it has labels, what it counts)
    let counters = [
        (
            "bidask_orders_accepted_total",
            false,
            "Orders placed and answered 201, after their commit.",
        ),
        (
            "bidask_orders_rejected_total",
            true,
            "Orders refused, by the code of the error they were answered with.",
        ),
        (
            "bidask_orders_expired_total",
            false,
            "Orders that left the book at their expires_at.",
        ),
        ("bidask_matches_total", false, "Trades committed."),
        (
            "bidask_events_published_total",
            false,
            "Feed events published after their commit.",
        ),
        (
            "bidask_commit_failures_total",
            false,
            "Group-commit batches that failed (their products rebuild from the database) or were refused (retried product by product).",
        ),
        (
            "bidask_units_refused_stale_total",
            false,
            "Commands refused unwritten because their product was being rebuilt.",
        ),
        (
            "bidask_requests_rate_limited_total",
            false,
            "Requests answered 429.",
        ),
        (
            "bidask_http_timeouts_total",
            true,
            "Requests timed out, waiting for the client's body (408), for the server (503), or for the client to read its answer (closed).",
        ),
        (
            "bidask_ws_messages_sent_total",
            false,
            "WebSocket messages written to clients.",
        ),
        (
            "bidask_ws_events_fanned_out_total",
            false,
            "Events queued to subscribed WebSocket clients.",
        ),
        (
            "bidask_ws_slow_disconnects_total",
            false,
            "WebSocket clients closed with 4008 for a full queue.",
        ),
        (
            "bidask_ws_ping_timeouts_total",
            false,
            "WebSocket clients closed for not answering pings, or for not reading.",
        ),
        (
            "bidask_ws_resumes_total",
            true,
            "since_seq resumes, by where the events came from.",
        ),
        (
            "bidask_http_connections_refused_total",
            false,
            "Connections answered 503 on accept: their address held its share, or all held the HTTP room.",
        ),
        (
            "bidask_feed_events_pruned_total",
            false,
            "Feed events pruned past BIDASK_FEED_RETENTION_SECS.",
        ),
    ];
    for (name, labelled, help) in counters {
        describe_counter!(name, Unit::Count, help);
        // A labelled series cannot start before its label is known.
        if !labelled {
            metrics::counter!(name).increment(0);
        }
    }
    describe_gauge!(
        "bidask_ws_connections",
        Unit::Count,
        "WebSocket connections open."
    );
    describe_gauge!(
        "bidask_ws_subscriptions",
        Unit::Count,
        "Channel subscriptions held by WebSocket clients."
    );
    describe_gauge!(
        "bidask_ws_fanout_backlog",
        Unit::Count,
        "Commits' event lists waiting for the fan-out thread, as it last took a batch."
    );
    for name in [
        "bidask_ws_connections",
        "bidask_ws_subscriptions",
        "bidask_ws_fanout_backlog",
    ] {
        metrics::gauge!(name).increment(0.0);
    }
    describe_histogram!(
        "bidask_commit_seconds",
        Unit::Seconds,
        "Time to write one group-commit batch, a failed one included."
    );
    describe_histogram!(
        "bidask_commit_batch_units",
        Unit::Count,
        "Commands in one group-commit batch."
    );
    describe_histogram!(
        "bidask_http_request_duration_seconds",
        Unit::Seconds,
        "REST request latency, by method, route and status."
    );
    describe_histogram!(
        "bidask_ws_queue_depth",
        Unit::Count,
        "Frames queued for a WebSocket connection, read at each of its heartbeats."
    );
}
