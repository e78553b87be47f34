//! The command line of the `bidask` binary: `bidask serve` (the default)
//! and `bidask migrate`. It lives in the library so that the crash tests
//! can run exactly this in a process of their own and kill it.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::config::{Cli, Command, ServeConfig};
use crate::startup::{Application, StartupError, migrate};

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
    let command = cli.command();
    let json_logs = matches!(&command, Command::Serve(config) if config.log_format == "json");
    init_tracing(json_logs);
    let result = match command {
        Command::Migrate(config) => migrate(&config).await.map(|()| {
            tracing::info!("migrations applied");
        }),
        Command::Serve(config) => serve(*config).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "bidask stopped");
            eprintln!("bidask: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: ServeConfig) -> Result<(), StartupError> {
    let application = Application::build(config).await?;
    let address = application.local_addr()?;
    tracing::info!(%address, "bidask listening on http://{address}");
    application.run_until_stopped(shutdown_signal()).await?;
    tracing::info!("bidask stopped cleanly");
    Ok(())
}

fn init_tracing(json: bool) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    // Colours only for a terminal, not for a file or a log collector.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: draining requests, committing what was accepted");
}
