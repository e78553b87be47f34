//! `bidask`: see [`bidask_server::cli`].

fn main() -> std::process::ExitCode {
    bidask_server::cli::main()
}
