//! Clocks and memory: throughput, per-command latency with the timer's own
//! cost taken out, and the process's peak resident memory.

use std::hint::black_box;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Latency percentiles of one run, in nanoseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    /// Median.
    pub p50_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// Slowest command.
    pub max_ns: u64,
    /// Mean.
    pub mean_ns: f64,
}

/// The median cost of reading the clock twice back to back: what every
/// timed sample carries on top of the command it times.
pub fn timer_overhead_ns() -> u64 {
    let mut histogram = new_histogram();
    for _ in 0..1_000_000 {
        let start = Instant::now();
        let end = black_box(Instant::now());
        let _ = histogram.record(nanos(end - start));
    }
    histogram.value_at_quantile(0.5)
}

/// Runs `apply` over every command, timing the whole run.
pub fn throughput<C>(
    commands: &[C],
    mut apply: impl FnMut(&C),
    mut progress: impl FnMut(usize),
) -> f64 {
    let start = Instant::now();
    for (done, chunk) in commands.chunks(1 << 20).enumerate() {
        for command in chunk {
            apply(command);
        }
        progress((done + 1) << 20);
    }
    let elapsed = start.elapsed().as_secs_f64();
    commands.len() as f64 / elapsed
}

/// Runs `apply` over every command, timing each one and subtracting `overhead_ns`.
pub fn latency<C>(
    commands: &[C],
    overhead_ns: u64,
    mut apply: impl FnMut(&C),
    mut progress: impl FnMut(usize),
) -> Latency {
    let mut histogram = new_histogram();
    for (done, chunk) in commands.chunks(1 << 20).enumerate() {
        for command in chunk {
            let start = Instant::now();
            apply(command);
            let end = Instant::now();
            let _ = histogram.record(nanos(end - start).saturating_sub(overhead_ns));
        }
        progress((done + 1) << 20);
    }
    Latency {
        p50_ns: histogram.value_at_quantile(0.5),
        p99_ns: histogram.value_at_quantile(0.99),
        p999_ns: histogram.value_at_quantile(0.999),
        max_ns: histogram.max(),
        mean_ns: histogram.mean(),
    }
}

fn new_histogram() -> Histogram<u64> {
    // Three significant digits from 1 ns to 10 s; the bounds are constants.
    Histogram::new_with_bounds(1, 10_000_000_000, 3).expect("valid histogram bounds")
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Peak resident memory of this process, in bytes (0 where `/proc` is missing).
pub fn peak_resident_bytes() -> u64 {
    status_kib("VmHWM:") * 1024
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
