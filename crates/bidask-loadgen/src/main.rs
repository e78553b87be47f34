//! `bidask-loadgen`: puts load on a running bidask server and reports
//! throughput and latency. Each scenario is a subcommand; the readable
//! summary goes to stdout, and its last line is one JSON object with every
//! figure, for scripts and CI.
//!
//! Exit status: 0 when the run completed (request errors are reported, not
//! fatal), 1 when setup failed, 2 for a bad command line, 3 when the error
//! rate exceeded `--max-error-rate`.

use std::process::ExitCode;

use bidask_loadgen::{FanoutConfig, LoadgenError, OrdersConfig, RunReport};
use clap::{Parser, Subcommand};

/// Exit status of a run whose setup failed.
const SETUP_FAILED: u8 = 1;
/// Exit status of a run over its error budget (2 is clap's usage error).
const OVER_ERROR_BUDGET: u8 = 3;

/// Load generator for the bidask marketplace.
#[derive(Debug, Parser)]
#[command(name = "bidask-loadgen", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The scenarios.
#[derive(Debug, Subcommand)]
enum Command {
    /// Traders placing, crossing and cancelling orders over REST, timing every request.
    Orders(OrdersConfig),
    /// WebSocket clients subscribed to one product while events arrive,
    /// timing each event from its `ts` to every client.
    Fanout(FanoutConfig),
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Orders(config) => {
            let max_error_rate = config.max_error_rate;
            finish(bidask_loadgen::run(config).await, max_error_rate)
        }
        Command::Fanout(config) => {
            let max_error_rate = config.max_error_rate;
            finish(bidask_loadgen::run_fanout(config).await, max_error_rate)
        }
    }
}

/// Prints a scenario's report, summary then JSON line, and turns the
/// outcome into the exit status.
fn finish(outcome: Result<impl RunReport, LoadgenError>, max_error_rate: f64) -> ExitCode {
    let report = match outcome {
        Ok(report) => report,
        Err(error) => {
            eprintln!("bidask-loadgen: {error}");
            return ExitCode::from(SETUP_FAILED);
        }
    };
    let line = match report.json_line() {
        Ok(line) => line,
        Err(error) => {
            eprintln!("bidask-loadgen: {error}");
            return ExitCode::from(SETUP_FAILED);
        }
    };
    println!("{}", report.summary_text());
    let within_budget = report.error_rate() <= max_error_rate;
    if !within_budget {
        eprintln!(
            "bidask-loadgen: error rate {:.4} is over --max-error-rate {max_error_rate}",
            report.error_rate()
        );
    }
    println!("{line}");
    if within_budget {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(OVER_ERROR_BUDGET)
    }
}
