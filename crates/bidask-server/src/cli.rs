//! The command line of the `bidask` binary: `bidask serve` (the default),
//! `bidask migrate` and `bidask backup`. It lives in the library so that
//! the crash tests can run exactly this in a process of their own and kill
//! it.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tracing_subscriber::EnvFilter;

use crate::config::{Cli, Command, LogFormat, ServeConfig};
use crate::startup::{Application, StartupError, back_up, migrate};

/// Parses the command line and runs the command to its end.
pub fn main() -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run()),
        Err(error) => {
            eprintln!("bidask: cannot start the async runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    // A person at a terminal, where the log and the error both land: the
    // error is said once, as a sentence, not also as a log line above it.
    let at_a_terminal = cli.log_format == LogFormat::Text
        && std::io::stdout().is_terminal()
        && std::io::stderr().is_terminal();
    let command = cli.command();
    let result = match command {
        Command::Migrate(config) => migrate(&config).await.map(|()| {
            tracing::info!("migrations applied");
        }),
        Command::Backup(config) => back_up(&config).await,
        Command::Serve(config) => serve(*config).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Elsewhere both: the log for a collector, stderr for a
            // script or a service manager.
            if !at_a_terminal {
                tracing::error!(%error, "bidask stopped");
            }
            eprintln!("bidask: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: ServeConfig) -> Result<(), StartupError> {
    // Listened for before start-up, which can take a while (migrations,
    // rebuilding every book): a stop meanwhile is not the signal's default
    // action (death, or nothing at all as a container's first process).
    let mut stop = Stop::listen().map_err(StartupError::Io)?;
    tracing::info!("starting: migrations, the catalog and every book");
    let mut build = std::pin::pin!(Application::build(config));
    let (application, stopping) = tokio::select! {
        built = &mut build => (built?, false),
        () = stop.requested() => {
            // Start-up is finished rather than cut off (the demo catalog,
            // say, is seeded one product at a time), then drained at once.
            tracing::info!("stopping once start-up is done; a second signal stops now");
            tokio::select! {
                built = &mut build => (built?, true),
                // Not a clean stop: a supervisor must not count a start-up
                // left halfway as one.
                () = stop.requested() => return Err(StartupError::InterruptedStarting),
            }
        }
    };
    let address = application.local_addr()?;
    tracing::info!(%address, "bidask listening on http://{address}");
    let (draining, drain) = tokio::sync::oneshot::channel::<()>();
    let run = application.run_until_stopped(async move {
        let _ = drain.await;
        tracing::info!(
            "shutting down: draining requests, committing what was accepted; a second signal stops now"
        );
    });
    let mut run = std::pin::pin!(run);
    if !stopping {
        tokio::select! {
            ran = &mut run => return ran.map(|()| stopped()),
            () = stop.requested() => {}
        }
    }
    let _ = draining.send(());
    // A second signal (an operator's second Ctrl-C) ends the drain: what
    // is left unanswered is lost as in a crash, which no answered request
    // ever is, since each was committed before its answer.
    tokio::select! {
        ran = &mut run => ran?,
        () = stop.requested() => return Err(StartupError::Interrupted),
    }
    stopped();
    Ok(())
}

fn stopped() {
    // True after a shutdown that timed out too: the requests it cut short
    // got no answer, but what the writer already had of them is
    // committed, as after a crash (a retry with its key tells).
    tracing::info!("bidask stopped: everything accepted is committed");
}

/// The log levels without `RUST_LOG`.
const DEFAULT_LOG_FILTER: &str = "info,sqlx=warn,tower_http=info";

fn init_tracing(format: LogFormat) {
    // A `RUST_LOG` that does not parse is said once logging runs, rather
    // than leaving an operator to wonder why their levels do nothing. It
    // does not stop the server: it is a debugging aid, often set for a
    // whole environment.
    let directives = std::env::var_os("RUST_LOG").map(|value| value.into_string());
    let (filter, refused) = match directives {
        Some(Ok(directives)) if !directives.trim().is_empty() => {
            match EnvFilter::try_new(&directives) {
                Ok(filter) => (filter, None),
                Err(error) => (
                    EnvFilter::new(DEFAULT_LOG_FILTER),
                    Some((directives, error.to_string())),
                ),
            }
        }
        Some(Err(raw)) => (
            EnvFilter::new(DEFAULT_LOG_FILTER),
            Some((raw.to_string_lossy().into_owned(), "not UTF-8".to_owned())),
        ),
        _ => (EnvFilter::new(DEFAULT_LOG_FILTER), None),
    };
    // Colours only for a terminal, not for a file or a log collector.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    if let Some((directives, error)) = refused {
        tracing::warn!(
            rust_log = %directives,
            %error,
            "RUST_LOG is not a valid filter; logging at the default levels ({DEFAULT_LOG_FILTER})"
        );
    }
}

/// SIGTERM or SIGINT (Ctrl-C).
struct Stop {
    terminate: Signal,
    interrupt: Signal,
}

impl Stop {
    fn listen() -> std::io::Result<Self> {
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    async fn requested(&mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {},
            _ = self.interrupt.recv() => {},
        }
    }
}
