//! The `engine-bench` binary end to end, on short streams: it must finish,
//! agree with the reference model on every stream, and end with the JSON
//! summary line that scripts and CI read. The streams are long enough to
//! get past the books' building on every stream, so each one trades and
//! cancels: matching and cancels, not only resting orders, are compared.

use std::process::Command;

use serde_json::Value;

#[test]
fn engine_bench_ends_with_a_json_summary_and_agrees_with_the_model() {
    let output = Command::new(env!("CARGO_BIN_EXE_engine-bench"))
        .args(["--commands", "40000", "--seed", "7"])
        .output()
        .expect("engine-bench starts");
    assert!(
        output.status.success(),
        "engine-bench failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("engine-bench prints UTF-8");
    let last = stdout
        .lines()
        .last()
        .expect("engine-bench prints something");
    let summary: Value = serde_json::from_str(last).expect("the last line is one JSON object");

    for key in [
        "ops_per_sec",
        "p50_ns",
        "p99_ns",
        "p999_ns",
        "peak_memory_bytes",
    ] {
        let figure = summary[key].as_f64();
        assert!(
            figure.is_some_and(|figure| figure > 0.0),
            "{key} is {:?}",
            summary[key]
        );
    }
    assert_eq!(summary["agrees"], Value::Bool(true));

    let peers = summary["peers"].as_array().expect("peers is a list");
    let names: Vec<&str> = peers
        .iter()
        .filter_map(|peer| peer["name"].as_str())
        .collect();
    assert_eq!(names, ["lobster 0.7", "matchcore 0.4", "orderbook-rs 0.15"]);
    for peer in peers {
        assert!(
            peer["ops_per_sec"].as_f64().is_some_and(|ops| ops > 0.0),
            "{peer}"
        );
        assert!(peer["agrees"].is_boolean(), "{peer}");
    }

    let streams = summary["streams"].as_array().expect("streams is a list");
    assert_eq!(streams.len(), 3);
    for stream in streams {
        assert_eq!(stream["agrees"], Value::Bool(true), "{}", stream["stream"]);
        assert_eq!(stream["commands"], 40_000);
        let workload = &stream["workload"];
        for key in ["trades", "cancels", "mean_resting"] {
            assert!(
                workload[key].as_u64().is_some_and(|count| count > 0),
                "{}: {key} in {workload}",
                stream["stream"]
            );
        }
    }
}
