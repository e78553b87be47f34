//! The `bidask` command line, as a binary of this package so that the crash
//! tests can start and `kill -9` it.

fn main() -> std::process::ExitCode {
    bidask_server::cli::main()
}
