//! The `fanout` scenario: many WebSocket clients subscribed to one
//! product's channel while events arrive at a steady rate, measuring how
//! many messages the server delivers per second, how long each event
//! takes from its `ts` to each client, and how much memory the server
//! spends per connection.
//!
//! A run goes through these steps, each bounded in time:
//!
//! 1. the publisher is prepared (for bidask: the catalog is read and a
//!    trader signed in), and the server's resident memory is read;
//! 2. half the clients connect, each from one of `--source-addresses`
//!    loopback addresses, `--connect-concurrency` at a time, and
//!    subscribe; each setup is bounded by `--timeout`; after `--settle` of
//!    idle time (the default spans a heartbeat), the server's memory is
//!    read again;
//! 3. the other half does the same, and after another `--settle` the
//!    memory is read a third time; memory per connection comes from these
//!    readings (see `Readings` for how, and why two ways);
//! 4. the measured window: `--rate` events a second for `--duration`;
//!    events received count towards the rate and are timed;
//! 5. the drain: up to `--drain` more for events still on their way, timed
//!    but not counted in the rate; then every client closes.
//!
//! With `--stalled N`, N more clients subscribe the same way and then
//! read nothing until the run is over, as hung browsers would; the others'
//! latency is measured as usual, beside them, and afterwards each stalled
//! client reads what it was left to learn whether the server cut it off
//! (4008). Comparing a run with them against one without shows whether a
//! client that stops reading costs the others anything.
//!
//! Nothing in the window is fatal: failed setups, lost connections and
//! failed publishes are counted in the report. One process holds all the
//! clients: the server holds at most 19,000 connections, and one client
//! socket each fits this process's limit of 20,000 open files, which is
//! checked before anything connects.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{ArgAction, Args, ValueEnum};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::api::ApiClient;
use crate::args::{parse_duration, parse_fraction};
use crate::delivery::{Delivery, Phase};
use crate::error::LoadgenError;
use crate::fanout_report::FanoutReport;
use crate::feed_client::{self, ClientTally, Ending, FeedTarget, SLOW_CONSUMER, SetupFailure};
use crate::http::ServerUrl;
use crate::orders::DEFAULT_URL;
use crate::procfs::{self, Process};
use crate::progress::{self, PhaseProgress};
use crate::publisher::{self, Publisher};
use crate::report::ErrorCounts;
use crate::users::RunId;

/// Default number of subscribers.
pub const DEFAULT_CLIENTS: u32 = 1_000;
/// Default events per second.
pub const DEFAULT_RATE: u32 = 25;
/// Default number of loopback source addresses.
pub const DEFAULT_SOURCE_ADDRESSES: u8 = 4;
/// Default number of clients setting up at once.
pub const DEFAULT_CONNECT_CONCURRENCY: u32 = 256;
/// Files the load generator holds besides its clients' sockets (the
/// runtime, the publisher's connections, standard streams), with room.
const OTHER_OPEN_FILES: u64 = 128;
/// How often the drain looks whether everything has arrived.
const DRAIN_POLL: Duration = Duration::from_millis(50);
/// How often the progress bar's figures are refreshed.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// Which server delivers the messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// The bidask server: events are resting bids placed over REST.
    Bidask,
    /// The Node.js `ws` baseline (`scripts/bench/node-ws-broadcast`):
    /// event-shaped messages POSTed to `--publish-url`.
    Node,
}

/// Settings of a `fanout` run; also its command-line options.
#[derive(Debug, Clone, Args)]
pub struct FanoutConfig {
    /// Base URL of the server; clients connect to its `/ws`.
    #[arg(long, env = "BIDASK_LOADGEN_URL", default_value = DEFAULT_URL)]
    pub url: String,

    /// Which server it is, and so how events are published.
    #[arg(long, value_enum, default_value_t = Target::Bidask)]
    pub target: Target,

    /// With `--target node`: where messages are POSTed (default: the
    /// base URL's `/publish`).
    #[arg(long)]
    pub publish_url: Option<String>,

    /// WebSocket clients, all subscribed to the same product.
    #[arg(
        long,
        env = "BIDASK_LOADGEN_CLIENTS",
        default_value_t = DEFAULT_CLIENTS,
        value_parser = clap::value_parser!(u32).range(1..=100_000)
    )]
    pub clients: u32,

    /// Clients that subscribe and then never read, besides `--clients`.
    #[arg(
        long,
        default_value_t = 0,
        value_parser = clap::value_parser!(u32).range(0..=19_000)
    )]
    pub stalled: u32,

    /// Events per second during the measured window (0: hold the
    /// connections with heartbeats only).
    #[arg(
        long,
        default_value_t = DEFAULT_RATE,
        value_parser = clap::value_parser!(u32).range(0..=10_000)
    )]
    pub rate: u32,

    /// How long the measured window lasts (e.g. 20s, 2m).
    #[arg(long, env = "BIDASK_LOADGEN_DURATION", default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,

    /// The product whose channel the clients subscribe to (default: the
    /// catalog's first; with `--target node`, 1).
    #[arg(long)]
    pub product: Option<i64>,

    /// Loopback addresses the clients connect from (127.0.0.1, 127.0.0.2,
    /// …), in turn; used when the server is on an IPv4 loopback address.
    #[arg(
        long,
        default_value_t = DEFAULT_SOURCE_ADDRESSES,
        value_parser = clap::value_parser!(u8).range(1..=250)
    )]
    pub source_addresses: u8,

    /// The server's process id, to read its memory and CPU from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,

    /// Idle time between the last subscription and the memory reading.
    #[arg(long, default_value = "6s", value_parser = parse_duration)]
    pub settle: Duration,

    /// Longest wait after the window for events still on their way.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub drain: Duration,

    /// Longest wait for a client's setup or a publish.
    #[arg(long, env = "BIDASK_LOADGEN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Clients connecting and subscribing at once.
    #[arg(
        long,
        default_value_t = DEFAULT_CONNECT_CONCURRENCY,
        value_parser = clap::value_parser!(u32).range(1..=20_000)
    )]
    pub connect_concurrency: u32,

    /// Exit with status 3 when errors / (clients + publishes) exceeds this
    /// fraction (the default, 1, never fails the run).
    #[arg(long, default_value_t = 1.0, value_parser = parse_fraction)]
    pub max_error_rate: f64,

    /// The publishing trader is lg<RUN_ID>-0 (default: a fresh id).
    #[arg(long, env = "BIDASK_LOADGEN_RUN_ID")]
    pub run_id: Option<RunId>,

    /// Draw no progress bar.
    #[arg(long = "no-progress", action = ArgAction::SetFalse)]
    pub progress: bool,
}

impl FanoutConfig {
    /// The command line's defaults, against the bidask server at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            target: Target::Bidask,
            publish_url: None,
            clients: DEFAULT_CLIENTS,
            stalled: 0,
            rate: DEFAULT_RATE,
            duration: Duration::from_secs(10),
            product: None,
            source_addresses: DEFAULT_SOURCE_ADDRESSES,
            server_pid: None,
            settle: Duration::from_secs(6),
            drain: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            connect_concurrency: DEFAULT_CONNECT_CONCURRENCY,
            max_error_rate: 1.0,
            run_id: None,
            progress: true,
        }
    }
}

impl Default for FanoutConfig {
    fn default() -> Self {
        Self::new(DEFAULT_URL)
    }
}

/// What the clients saw, summed.
#[derive(Debug, Default)]
struct ClientTotals {
    heartbeats: u64,
    missing: u64,
    out_of_order: u64,
    error_messages: u64,
    disconnects: u64,
    slow_consumer_closes: u64,
}

/// Readings of the server's and the generator's processes.
///
/// Memory per connection is read two ways, each the growth of the
/// server's resident memory between two idle readings over the
/// connections added: from before any client connected to all of them,
/// and from half of them to all. Each way reads low for some servers:
/// the first where an allocator hands memory freed at start-up to the
/// first connections (mimalloc: about 1 KB a connection at 19,000), the
/// second where a garbage-collected heap grew in the first half for both
/// (Node.js: 2.5 KB against 6.4 KB). The larger of the two is the figure.
#[derive(Debug, Default)]
struct Readings {
    rss_before: Option<u64>,
    rss_half: Option<u64>,
    held_half: usize,
    rss_connected: Option<u64>,
    rss_loaded: Option<u64>,
    /// Every connection the server holds: subscribers and stalled ones.
    held_connected: usize,
    server_cpu_percent: Option<f64>,
    loadgen_cpu_percent: Option<f64>,
}

/// Runs the scenario and reports what it measured. Fails only when setup
/// fails (bad settings, no server, no product, no client subscribed).
pub async fn run_fanout(config: FanoutConfig) -> Result<FanoutReport, LoadgenError> {
    let clients = usize::try_from(config.clients.max(1)).unwrap_or(1);
    let stalled = usize::try_from(config.stalled).unwrap_or(0);
    check_open_files(clients + stalled)?;
    let url = ServerUrl::parse(&config.url)?;
    let server = url.resolve().await?;
    let base = url.as_str().to_owned();
    let run_id = config.run_id.clone().unwrap_or_else(RunId::from_clock);
    let mut publisher = match config.target {
        Target::Bidask => {
            let api = ApiClient::new(&base, config.timeout).await?;
            Publisher::orders(api, &run_id, config.product).await?
        }
        Target::Node => {
            let url = config
                .publish_url
                .clone()
                .unwrap_or_else(|| format!("{base}/publish"));
            Publisher::node(&url, config.product.unwrap_or(1), config.timeout).await?
        }
    };
    let product_id = publisher.product_id();
    let sources = source_addresses(server, config.source_addresses);
    let target = Arc::new(FeedTarget {
        server,
        url: format!("ws://{}/ws", base.trim_start_matches("http://")),
        subscribe: Utf8Bytes::from(format!(
            r#"{{"type":"subscribe","channels":["product:{product_id}"]}}"#
        )),
        timeout: config.timeout,
    });
    let server_process = config.server_pid.map(Process::Pid);
    let mut readings = Readings {
        rss_before: match config.server_pid {
            Some(pid) => Some(
                Process::Pid(pid)
                    .resident_bytes()
                    .map_err(|source| LoadgenError::ServerProcess { pid, source })?,
            ),
            None => None,
        },
        ..Readings::default()
    };

    // Connect and subscribe every client, in two waves with an idle
    // reading of the server's memory after each (see `Readings`).
    let delivery = Arc::new(Delivery::new()?);
    let (stop, stopped) = watch::channel(false);
    let permits = Arc::new(Semaphore::new(
        usize::try_from(config.connect_concurrency).unwrap_or(1),
    ));
    let mut tasks = JoinSet::new();
    let mut spawn_clients = |indices: std::ops::Range<usize>| {
        let (sender, outcomes) = mpsc::unbounded_channel();
        for index in indices {
            let source = source_of(&sources, index);
            tasks.spawn(feed_client::run(
                index,
                source,
                Arc::clone(&target),
                Arc::clone(&delivery),
                Arc::clone(&permits),
                sender.clone(),
                stopped.clone(),
            ));
        }
        outcomes
    };
    let bar = progress::counting(
        (clients + stalled) as u64,
        "subscribing clients",
        config.progress,
    );
    let mut errors_by_kind = ErrorCounts::default();
    // Each client reports once, within --timeout of getting its permit,
    // and drops its sender; so a count ends when the last one has reported.
    let first_wave = clients / 2;
    let mut subscribed = 0;
    if first_wave > 0 {
        let mut outcomes = spawn_clients(0..first_wave);
        subscribed += count_setups(&mut outcomes, &mut errors_by_kind, "", &bar).await;
        tokio::time::sleep(config.settle).await;
        readings.held_half = delivery.held.load(Ordering::Relaxed);
        readings.rss_half = server_process.and_then(|process| process.resident_bytes().ok());
    }
    let mut outcomes = spawn_clients(first_wave..clients);
    let (stalled_sender, mut stalled_outcomes) = mpsc::unbounded_channel();
    let mut stalled_tasks = JoinSet::new();
    for index in 0..stalled {
        let source = source_of(&sources, index);
        stalled_tasks.spawn(feed_client::run_stalled(
            source,
            Arc::clone(&target),
            Arc::clone(&permits),
            stalled_sender.clone(),
            stopped.clone(),
            config.drain,
        ));
    }
    drop(stalled_sender);
    subscribed += count_setups(&mut outcomes, &mut errors_by_kind, "", &bar).await;
    let stalled_subscribed =
        count_setups(&mut stalled_outcomes, &mut errors_by_kind, "stalled_", &bar).await;
    bar.finish_and_clear();
    if subscribed == 0 {
        let _ = stop.send(true);
        tasks.shutdown().await;
        return Err(LoadgenError::NoSubscriber {
            url: target.url.clone(),
            failures: errors_by_kind.listing(),
        });
    }
    let setup_failures = errors_by_kind.total();

    // Idle, then memory per connection.
    tokio::time::sleep(config.settle).await;
    readings.held_connected = delivery.held.load(Ordering::Relaxed) + stalled_subscribed;
    readings.rss_connected = server_process.and_then(|process| process.resident_bytes().ok());

    // The measured window.
    let cpu_before = cpu_times(server_process);
    let held_at_start = delivery.held.load(Ordering::Relaxed);
    let live_published = Arc::new(AtomicU64::new(0));
    delivery.set_phase(Phase::Measuring);
    let started = Instant::now();
    let phase = PhaseProgress::over(config.duration, config.progress);
    let ticker = tokio::spawn(show_progress(
        phase.clone(),
        Arc::clone(&delivery),
        Arc::clone(&live_published),
        started + config.duration + config.timeout,
    ));
    let publishing = publisher::run_schedule(
        &mut publisher,
        config.rate,
        config.duration,
        &live_published,
    )
    .await;
    delivery.set_phase(Phase::Draining);
    let window = started.elapsed();
    let held_at_end = delivery.held.load(Ordering::Relaxed);
    let cpu_after = cpu_times(server_process);
    readings.server_cpu_percent = cpu_before
        .0
        .zip(cpu_after.0)
        .map(|(before, after)| procfs::cpu_percent(before, after, window));
    readings.loadgen_cpu_percent = cpu_before
        .1
        .zip(cpu_after.1)
        .map(|(before, after)| procfs::cpu_percent(before, after, window));
    readings.rss_loaded = server_process.and_then(|process| process.resident_bytes().ok());
    ticker.abort();
    phase.finish();
    let publishing = publishing?;

    // The drain: wait for what is still on its way, then stop everyone.
    let expected = publishing.published * held_at_start as u64;
    let drain_until = Instant::now() + config.drain;
    while Instant::now() < drain_until && delivery.received().1 < expected {
        tokio::time::sleep(DRAIN_POLL).await;
    }
    delivery.set_phase(Phase::Stopped);
    let _ = stop.send(true);
    let mut totals = ClientTotals::default();
    while let Some(joined) = tasks.join_next().await {
        totals.add(&joined.map_err(LoadgenError::FeedClient)?);
    }
    let mut stalled_endings = ErrorCounts::default();
    while let Some(joined) = stalled_tasks.join_next().await {
        let key = match joined.map_err(LoadgenError::FeedClient)? {
            Ending::NotSubscribed => continue,
            Ending::Closed(Some(SLOW_CONSUMER)) => "slow_consumer".to_owned(),
            Ending::Closed(Some(code)) => format!("closed_{code}"),
            Ending::Closed(None) => "closed".to_owned(),
            Ending::Broken => "broken".to_owned(),
            Ending::Stopped => "still_open".to_owned(),
        };
        stalled_endings.add_many(&key, 1);
    }

    let received = delivery.merged()?;
    let latency = received.latencies.summary();
    let publish_latency = publishing.latency.summary();
    errors_by_kind.add_many(
        "disconnect",
        totals.disconnects - totals.slow_consumer_closes,
    );
    errors_by_kind.add_many("slow_consumer", totals.slow_consumer_closes);
    errors_by_kind.add_many("error_message", totals.error_messages);
    // A subscriber's event that never came (skipped, or after its last
    // one) or came again is a failed delivery: `--max-error-rate 0` must
    // not pass a server that drops or repeats events.
    let delivered = received.in_window + received.late;
    errors_by_kind.add_many("undelivered", expected.saturating_sub(delivered));
    errors_by_kind.add_many("out_of_order", totals.out_of_order);
    for (key, count) in publishing.errors.iter() {
        errors_by_kind.add_many(&format!("publish_{key}"), count);
    }
    let errors = errors_by_kind.total();
    let seconds = window.as_secs_f64();
    let per_second = |count: u64| {
        if seconds > 0.0 {
            count as f64 / seconds
        } else {
            0.0
        }
    };
    let attempts = (clients + stalled) as u64 + publishing.attempts + expected;
    let (from_idle, second_half) = readings.per_connection();
    Ok(FanoutReport {
        scenario: "fanout",
        target: match config.target {
            Target::Bidask => "bidask",
            Target::Node => "node",
        },
        url: base,
        product_id,
        clients,
        source_addresses: sources.len(),
        rate: config.rate,
        duration_s: seconds,
        connections: held_at_end,
        subscribed,
        setup_failures,
        disconnects: totals.disconnects,
        slow_consumer_closes: totals.slow_consumer_closes,
        stalled_clients: stalled,
        stalled_subscribed,
        stalled_endings,
        events_published: publishing.published,
        events_per_sec: per_second(publishing.published),
        publish_missed_ticks: publishing.missed_ticks,
        publish_errors: publishing.errors.total(),
        publish_p50_ms: publish_latency.p50_ms,
        publish_p99_ms: publish_latency.p99_ms,
        messages_delivered: received.in_window,
        messages_per_sec: per_second(received.in_window),
        expected_messages: expected,
        late_messages: received.late,
        delivery_ratio: if expected == 0 {
            0.0
        } else {
            delivered as f64 / expected as f64
        },
        missing: totals.missing,
        out_of_order: totals.out_of_order,
        untimed: received.untimed,
        heartbeats: totals.heartbeats,
        latency_samples: latency.count,
        p50_ms: latency.p50_ms,
        p99_ms: latency.p99_ms,
        p999_ms: latency.p999_ms,
        max_ms: latency.max_ms,
        mean_ms: latency.mean_ms,
        server_pid: config.server_pid,
        server_rss_before_bytes: readings.rss_before,
        server_rss_half_bytes: readings.rss_half,
        server_rss_connected_bytes: readings.rss_connected,
        server_rss_loaded_bytes: readings.rss_loaded,
        server_bytes_per_connection: from_idle.into_iter().chain(second_half).reduce(f64::max),
        server_bytes_per_connection_from_idle: from_idle,
        server_bytes_per_connection_second_half: second_half,
        server_cpu_percent: readings.server_cpu_percent,
        loadgen_cpu_percent: readings.loadgen_cpu_percent,
        errors,
        errors_by_kind,
        error_rate: if attempts == 0 {
            0.0
        } else {
            errors as f64 / attempts as f64
        },
    })
}

impl Readings {
    /// Bytes per connection from the idle reading and from the half-way
    /// one; see the type's docs.
    fn per_connection(&self) -> (Option<f64>, Option<f64>) {
        let growth = |from: Option<u64>, held_from: usize| {
            let added = self
                .held_connected
                .checked_sub(held_from)
                .filter(|&added| added > 0)?;
            Some((self.rss_connected? as f64 - from? as f64) / added as f64)
        };
        let from_idle = growth(self.rss_before, 0);
        let second_half = (self.held_half > 0)
            .then(|| growth(self.rss_half, self.held_half))
            .flatten();
        (from_idle, second_half)
    }
}

impl ClientTotals {
    fn add(&mut self, tally: &ClientTally) {
        self.heartbeats += tally.heartbeats;
        self.missing += tally.missing;
        self.out_of_order += tally.out_of_order;
        self.error_messages += tally.errors;
        match tally.ending {
            Ending::NotSubscribed | Ending::Stopped => {}
            Ending::Closed(Some(SLOW_CONSUMER)) => {
                self.disconnects += 1;
                self.slow_consumer_closes += 1;
            }
            Ending::Closed(_) | Ending::Broken => self.disconnects += 1,
        }
    }
}

/// Counts the setup outcomes of one kind of client as they arrive: the
/// subscribed ones, returned, and the failures, under `prefix` + their key.
async fn count_setups(
    outcomes: &mut mpsc::UnboundedReceiver<Result<(), SetupFailure>>,
    errors: &mut ErrorCounts,
    prefix: &str,
    bar: &indicatif::ProgressBar,
) -> usize {
    let mut subscribed = 0;
    while let Some(outcome) = outcomes.recv().await {
        match outcome {
            Ok(()) => subscribed += 1,
            Err(failure) => errors.add_many(&format!("{prefix}{}", failure.key()), 1),
        }
        bar.inc(1);
    }
    subscribed
}

/// Fails early when this process could not open a socket per client.
fn check_open_files(clients: usize) -> Result<(), LoadgenError> {
    // Without /proc (not Linux) there is nothing to check against; the
    // connections would fail and be counted instead.
    let Ok(limit) = procfs::open_files_limit() else {
        return Ok(());
    };
    let needed = clients as u64 + OTHER_OPEN_FILES;
    if limit.soft < needed {
        return Err(LoadgenError::OpenFiles {
            needed,
            soft: limit.soft,
            hard: limit.hard,
        });
    }
    Ok(())
}

/// 127.0.0.1, 127.0.0.2, … when the server listens on IPv4 loopback;
/// none (the kernel chooses) otherwise.
fn source_addresses(server: SocketAddr, count: u8) -> Vec<IpAddr> {
    if !matches!(server.ip(), IpAddr::V4(address) if address.is_loopback()) {
        return Vec::new();
    }
    (1..=count)
        .map(|last| IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .collect()
}

/// The source address of client `index`: the addresses in turn.
fn source_of(sources: &[IpAddr], index: usize) -> Option<IpAddr> {
    sources.get(index % sources.len().max(1)).copied()
}

/// CPU time used so far by the server (when known) and by this process.
fn cpu_times(server: Option<Process>) -> (Option<Duration>, Option<Duration>) {
    (
        server.and_then(|process| process.cpu_time().ok()),
        Process::Current.cpu_time().ok(),
    )
}

/// Refreshes the progress bar until aborted, or until `until` at the latest.
async fn show_progress(
    phase: PhaseProgress,
    delivery: Arc<Delivery>,
    published: Arc<AtomicU64>,
    until: Instant,
) {
    let mut interval = tokio::time::interval(PROGRESS_INTERVAL);
    while Instant::now() < until {
        interval.tick().await;
        let seconds = phase.elapsed().as_secs_f64().max(f64::EPSILON);
        let (in_window, _) = delivery.received();
        phase.show_message(format!(
            "{} held, {} lost, {} events, {} messages ({:.0}/s)",
            delivery.held.load(Ordering::Relaxed),
            delivery.lost.load(Ordering::Relaxed),
            published.load(Ordering::Relaxed),
            in_window,
            in_window as f64 / seconds
        ));
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn clients_spread_over_loopback_sources_only_for_a_loopback_server() {
        let loopback: SocketAddr = ([127, 0, 0, 1], 8080).into();
        let sources = source_addresses(loopback, 3);
        assert_eq!(
            sources,
            [
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)),
            ]
        );
        let remote: SocketAddr = ([10, 0, 0, 5], 8080).into();
        assert!(source_addresses(remote, 3).is_empty());
    }

    #[test]
    fn memory_per_connection_is_read_from_idle_and_over_the_second_half() {
        let mut readings = Readings {
            rss_before: Some(40_000_000),
            rss_half: Some(60_000_000),
            held_half: 5_000,
            rss_connected: Some(87_500_000),
            held_connected: 10_000,
            ..Readings::default()
        };
        assert_eq!(readings.per_connection(), (Some(4_750.0), Some(5_500.0)));
        // One client: no half-way reading.
        readings.rss_half = None;
        readings.held_half = 0;
        readings.held_connected = 1;
        readings.rss_connected = Some(40_006_000);
        assert_eq!(readings.per_connection(), (Some(6_000.0), None));
        readings.held_connected = 0;
        assert_eq!(readings.per_connection(), (None, None));
    }

    #[test]
    fn the_command_line_defaults_are_the_library_defaults() {
        #[derive(Debug, Parser)]
        struct Command {
            #[command(flatten)]
            config: FanoutConfig,
        }
        if std::env::vars().any(|(name, _)| name.starts_with("BIDASK_LOADGEN_")) {
            return;
        }
        let parsed = match Command::try_parse_from(["bidask-loadgen"]) {
            Ok(command) => command.config,
            Err(error) => panic!("{error}"),
        };
        let defaults = FanoutConfig::default();
        assert_eq!(parsed.url, defaults.url);
        assert_eq!(parsed.target, defaults.target);
        assert_eq!(parsed.clients, defaults.clients);
        assert_eq!(parsed.rate, defaults.rate);
        assert_eq!(parsed.duration, defaults.duration);
        assert_eq!(parsed.source_addresses, defaults.source_addresses);
        assert_eq!(parsed.settle, defaults.settle);
        assert_eq!(parsed.drain, defaults.drain);
        assert_eq!(parsed.timeout, defaults.timeout);
        assert_eq!(parsed.connect_concurrency, defaults.connect_concurrency);
        assert_eq!(parsed.progress, defaults.progress);
    }

    #[test]
    fn too_many_clients_for_the_open_file_limit_are_refused_up_front() {
        let Ok(limit) = procfs::open_files_limit() else {
            return;
        };
        let too_many = usize::try_from(limit.soft).unwrap_or(usize::MAX / 2);
        assert!(matches!(
            check_open_files(too_many),
            Err(LoadgenError::OpenFiles { .. })
        ));
        assert!(check_open_files(1).is_ok());
    }
}
