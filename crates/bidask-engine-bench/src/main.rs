//! `engine-bench`: replays deterministic, realistic order streams through
//! bidask-engine and through the published order-book crates that can take
//! them, checks every final book against the reference model, and prints
//! throughput, latency and memory. The last line of output is one JSON
//! object with all the figures.

use std::time::Instant;

use bidask_engine_bench::measure::{self, Latency};
use bidask_engine_bench::peers::{self, LevelBook, Peer};
use bidask_engine_bench::replay::EngineReplay;
use bidask_engine_bench::workload::{self, Workload, WorkloadSpec, WorkloadStats};
use clap::Parser;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::Serialize;

/// Command-line options.
#[derive(Debug, Parser)]
#[command(name = "engine-bench", version, about)]
struct Options {
    /// Commands per stream.
    #[arg(long, default_value_t = 10_000_000)]
    commands: usize,
    /// Seed of the stream generator: the same seed replays the same streams.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Leave out the published order-book crates.
    #[arg(long)]
    no_peers: bool,
}

/// Figures of one stream.
#[derive(Debug, Serialize)]
struct StreamReport {
    stream: &'static str,
    markets: u32,
    commands: usize,
    ops_per_sec: f64,
    p50_ns: u64,
    p99_ns: u64,
    p999_ns: u64,
    max_ns: u64,
    mean_ns: f64,
    /// Heap bytes of the engine's structures at their largest.
    peak_memory_bytes: u64,
    agrees: bool,
    workload: WorkloadStats,
    peers: Vec<PeerReport>,
}

/// Figures of one peer on one stream.
#[derive(Debug, Serialize)]
struct PeerReport {
    name: &'static str,
    ops_per_sec: f64,
    /// Our ops/s over theirs.
    ratio: f64,
    /// Whether its final books equal the reference model's.
    agrees: bool,
}

/// The final JSON line: the first stream's figures at the top level.
#[derive(Debug, Serialize)]
struct Summary<'a> {
    stream: &'static str,
    ops_per_sec: f64,
    p50_ns: u64,
    p99_ns: u64,
    p999_ns: u64,
    peak_memory_bytes: u64,
    /// Peak resident memory of the whole benchmark process (streams and
    /// reference model included), from the kernel.
    process_peak_resident_bytes: u64,
    /// Whether the engine's final books equal the reference model's on
    /// every stream, not only the first.
    agrees: bool,
    peers: &'a [PeerReport],
    fastest_agreeing_peer_ratio: Option<f64>,
    timer_overhead_ns: u64,
    cpu: String,
    cores: usize,
    seed: u64,
    elapsed_sec: f64,
    streams: &'a [StreamReport],
}

fn main() {
    let options = Options::parse();
    let started = Instant::now();
    let specs = [
        WorkloadSpec {
            name: "1 market, ~2,000 resting",
            markets: 1,
            markets_per_product: 1,
            resting_orders: 2_000,
            commands: options.commands,
            seed: options.seed,
        },
        WorkloadSpec {
            name: "1 market, ~20,000 resting",
            markets: 1,
            markets_per_product: 1,
            resting_orders: 20_000,
            commands: options.commands,
            seed: options.seed + 1,
        },
        WorkloadSpec {
            name: "1,000 markets (50 products x 20 sizes), ~20,000 resting",
            markets: 1_000,
            markets_per_product: 20,
            resting_orders: 20_000,
            commands: options.commands,
            seed: options.seed + 2,
        },
    ];
    let workloads = generate_all(&specs);
    let overhead = measure::timer_overhead_ns();
    println!(
        "engine-bench: {} commands per stream, seed {}, timer overhead {overhead} ns (subtracted)",
        options.commands, options.seed
    );
    // The slow peer replays only the first stream (see `peers::fast`).
    let reports: Vec<StreamReport> = workloads
        .iter()
        .enumerate()
        .map(|(index, workload)| {
            let peers = match (options.no_peers, index) {
                (true, _) => Vec::new(),
                (false, 0) => peers::all(workload.spec.markets as usize),
                (false, _) => peers::fast(workload.spec.markets as usize),
            };
            run_stream(workload, overhead, peers)
        })
        .collect();
    let Some(first) = reports.first() else {
        return;
    };
    let fastest_agreeing_peer_ratio = first
        .peers
        .iter()
        .filter(|peer| peer.agrees)
        .map(|peer| peer.ratio)
        .reduce(f64::min);
    let summary = Summary {
        stream: first.stream,
        ops_per_sec: first.ops_per_sec,
        p50_ns: first.p50_ns,
        p99_ns: first.p99_ns,
        p999_ns: first.p999_ns,
        peak_memory_bytes: first.peak_memory_bytes,
        process_peak_resident_bytes: measure::peak_resident_bytes(),
        agrees: reports.iter().all(|report| report.agrees),
        peers: &first.peers,
        fastest_agreeing_peer_ratio,
        timer_overhead_ns: overhead,
        cpu: cpu_model(),
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        seed: options.seed,
        elapsed_sec: started.elapsed().as_secs_f64(),
        streams: &reports,
    };
    match serde_json::to_string(&summary) {
        Ok(line) => println!("{line}"),
        Err(error) => {
            eprintln!("engine-bench: could not encode the summary: {error}");
            std::process::exit(1);
        }
    }
    // A fast engine that matches wrongly has measured nothing.
    if !summary.agrees {
        eprintln!("engine-bench: the engine's books differ from the reference model's");
        std::process::exit(2);
    }
}

/// Generates every stream at once, one thread each: generation drives the
/// reference model and is the slowest part of the run, and the threads
/// share the cores between them. Nothing is measured while it runs.
fn generate_all(specs: &[WorkloadSpec]) -> Vec<Workload> {
    let bars = MultiProgress::new();
    std::thread::scope(|scope| {
        let handles: Vec<_> = specs
            .iter()
            .map(|spec| {
                let bar = bars.add(progress(
                    spec.commands as u64,
                    &format!("generate {}", spec.name),
                ));
                scope.spawn(move || {
                    let workload = workload::generate(*spec, |done| bar.set_position(done as u64));
                    bar.finish_and_clear();
                    workload
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| match handle.join() {
                Ok(workload) => workload,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

fn run_stream(workload: &Workload, overhead: u64, peers: Vec<Box<dyn Peer>>) -> StreamReport {
    let spec = workload.spec;
    let commands = &workload.commands;

    // The engine is called through `dyn Peer`, like the peers, and
    // `black_box` keeps the compiler from seeing through it.
    let mut engine = EngineReplay::new(&spec);
    let bar = progress(commands.len() as u64, "bidask-engine throughput");
    let dynamic: &mut dyn Peer = std::hint::black_box(&mut engine);
    let ops_per_sec = measure::throughput(
        commands,
        |command| dynamic.apply(command),
        |done| bar.set_position(done as u64),
    );
    bar.finish_and_clear();
    let peak_memory_bytes = engine.allocated_bytes() as u64;
    let agrees = engine.books(spec.markets) == workload.final_books;
    let resting_at_end = engine.resting_orders();
    drop(engine);

    let mut timed = EngineReplay::new(&spec);
    let bar = progress(commands.len() as u64, "bidask-engine latency");
    let dynamic: &mut dyn Peer = std::hint::black_box(&mut timed);
    let latency = measure::latency(
        commands,
        overhead,
        |command| dynamic.apply(command),
        |done| bar.set_position(done as u64),
    );
    bar.finish_and_clear();
    drop(timed);

    let peers = run_peers(workload, peers, ops_per_sec);
    let report = StreamReport {
        stream: spec.name,
        markets: spec.markets,
        commands: commands.len(),
        ops_per_sec,
        p50_ns: latency.p50_ns,
        p99_ns: latency.p99_ns,
        p999_ns: latency.p999_ns,
        max_ns: latency.max_ns,
        mean_ns: latency.mean_ns,
        peak_memory_bytes,
        agrees,
        workload: workload.stats,
        peers,
    };
    print_stream(&report, resting_at_end, &latency);
    report
}

fn run_peers(workload: &Workload, peers: Vec<Box<dyn Peer>>, ours: f64) -> Vec<PeerReport> {
    peers
        .into_iter()
        .map(|mut peer| {
            let name = peer.name();
            let bar = progress(workload.commands.len() as u64, name);
            let ops_per_sec = measure::throughput(
                &workload.commands,
                |command| peer.apply(command),
                |done| bar.set_position(done as u64),
            );
            bar.finish_and_clear();
            let agrees = same_books(&peer.books(), &workload.final_books);
            PeerReport {
                name,
                ops_per_sec,
                ratio: ours / ops_per_sec,
                agrees,
            }
        })
        .collect()
}

/// Whether a peer's books equal the model's; a peer may list fewer markets
/// (it creates them lazily), which then must be empty in the model.
fn same_books(peer: &[LevelBook], model: &[LevelBook]) -> bool {
    let empty = LevelBook::default();
    (0..peer.len().max(model.len()))
        .all(|market| peer.get(market).unwrap_or(&empty) == model.get(market).unwrap_or(&empty))
}

fn print_stream(report: &StreamReport, resting_at_end: usize, latency: &Latency) {
    let stats = &report.workload;
    println!();
    println!("== {} ==", report.stream);
    println!(
        "  stream: {} commands: {} passive, {} crossing ({} ioc), {} cancels ({} late); {} trades; ~{} resting (mean), {} at the end",
        report.commands,
        stats.passive_placements,
        stats.crossing_placements,
        stats.immediate_or_cancel,
        stats.cancels,
        stats.late_cancels,
        stats.trades,
        stats.mean_resting,
        resting_at_end
    );
    println!(
        "  bidask-engine: {:>12.0} commands/s   p50 {} ns  p99 {} ns  p99.9 {} ns  max {} ns  mean {:.1} ns   engine memory {:.2} MiB   agrees with reference: {}",
        report.ops_per_sec,
        latency.p50_ns,
        latency.p99_ns,
        latency.p999_ns,
        latency.max_ns,
        latency.mean_ns,
        report.peak_memory_bytes as f64 / 1_048_576.0,
        yes_no(report.agrees)
    );
    for peer in &report.peers {
        println!(
            "  {:<18} {:>12.0} commands/s   bidask-engine is {:.2}x   agrees with reference: {}",
            peer.name,
            peer.ops_per_sec,
            peer.ratio,
            yes_no(peer.agrees)
        );
    }
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "NO" }
}

fn progress(length: u64, message: &str) -> ProgressBar {
    let bar = ProgressBar::new(length);
    if let Ok(style) = ProgressStyle::with_template("{msg:<40} [{bar:30}] {percent:>3}% {eta}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message.to_owned());
    bar
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}
