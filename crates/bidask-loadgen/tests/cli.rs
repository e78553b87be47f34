//! The `bidask-loadgen` command line: the subcommands and flags that
//! scripts and CI rely on are there and documented, bad values are refused
//! before any request is made, and a setup failure is a non-zero exit with
//! a clear message.

use std::process::{Command, Output};

fn loadgen(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bidask-loadgen"));
    // Settings from the environment would change what these tests see.
    for (name, _) in std::env::vars() {
        if name.starts_with("BIDASK_LOADGEN_") {
            command.env_remove(name);
        }
    }
    command.args(args).output().expect("bidask-loadgen starts")
}

fn stdout_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_lists_the_orders_subcommand() {
    let output = loadgen(&["--help"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    let help = stdout_of(&output);
    assert!(help.contains("orders"), "{help}");
    assert!(help.contains("bidask-loadgen"), "{help}");
}

#[test]
fn orders_help_lists_every_flag_with_its_default() {
    let output = loadgen(&["orders", "--help"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    let help = stdout_of(&output);
    for flag in [
        "--url",
        "--traders",
        "--duration",
        "--requests",
        "--rate",
        "--seed",
        "--timeout",
        "--max-error-rate",
        "--run-id",
        "--no-progress",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    for default in [
        "[default: http://127.0.0.1:8080]",
        "[default: 64]",
        "[default: 10s]",
        "[default: 42]",
        "[default: 1]",
    ] {
        assert!(help.contains(default), "{default} missing from:\n{help}");
    }
}

#[test]
fn bad_values_are_refused_as_usage_errors() {
    for args in [
        ["orders", "--duration", "0s"],
        ["orders", "--traders", "0"],
        ["orders", "--rate", "0"],
        ["orders", "--max-error-rate", "1.5"],
        ["orders", "--timeout", "soon"],
        ["orders", "--run-id", "not valid"],
    ] {
        let output = loadgen(&args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr_of(&output)
        );
    }
}

#[test]
fn an_unreachable_server_fails_setup_with_a_clear_message() {
    // Port 9 (discard) on loopback: nothing listens there in a test.
    // With --rate too: a rate is a valid option, so this gets as far as
    // connecting (exit 1), not a usage error (2).
    let output = loadgen(&[
        "orders",
        "--url",
        "http://127.0.0.1:9",
        "--timeout",
        "2s",
        "--rate",
        "1",
        "--no-progress",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
    let message = stderr_of(&output);
    assert!(message.contains("http://127.0.0.1:9"), "{message}");
    assert!(message.contains("bidask serve"), "{message}");
    assert!(
        stdout_of(&output).is_empty(),
        "no report after a failed setup"
    );
}

#[test]
fn https_urls_are_refused_before_any_request() {
    let output = loadgen(&["orders", "--url", "https://127.0.0.1:8080", "--no-progress"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
    assert!(
        stderr_of(&output).contains("plain HTTP"),
        "{}",
        stderr_of(&output)
    );
}
