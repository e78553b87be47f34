//! The README's quick tour, run as it is written (its `curl` commands in
//! `bash`) against the README's first command, `bidask serve --demo` on the
//! embedded SQLite file in a fresh directory: a README whose tour drifted
//! from the server fails here.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bidask_tests::process::ServerProcess;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_quick_tour_works_as_written() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("the README");
    let tour = quick_tour(&readme);
    assert!(
        tour.contains("http://127.0.0.1:8080"),
        "the tour talks to the README's server:\n{tour}"
    );
    let directory = tempfile::tempdir().expect("a directory");
    let mut serve = Command::new(env!("CARGO_BIN_EXE_bidask-under-test"));
    serve
        .args(run_arguments(&readme))
        .args(["--listen", "127.0.0.1:0"])
        .current_dir(directory.path())
        .env_remove("DATABASE_URL")
        .env_remove("BIDASK_JWT_SECRET");
    let server = ServerProcess::spawn(serve);
    let script = tour.replace("http://127.0.0.1:8080", &server.address);

    let run = tokio::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the tour ends within a minute")
        .expect("bash runs (and curl is installed: scripts/test installs it)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the tour failed:\n{stderr}");

    // Each `curl -s` that is not captured prints one JSON reply.
    let replies: Vec<Value> = serde_json::Deserializer::from_slice(&output.stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|error| {
            panic!(
                "the tour printed something other than JSON replies ({error}):\n{}",
                String::from_utf8_lossy(&output.stdout)
            )
        });
    let [sam, bea, product, ask, bid, matches, notifications, book] = replies.as_slice() else {
        panic!("eight replies expected: {replies:#?}");
    };
    assert_eq!(sam["user"]["username"], "sam", "{sam}");
    assert_eq!(bea["user"]["username"], "bea", "{bea}");
    assert_eq!(product["id"], 1, "{product}");
    assert!(
        product["name"]
            .as_str()
            .is_some_and(|name| name.starts_with("Air Jordan 1")),
        "{product}"
    );
    assert_eq!(
        (&ask["order"]["status"], &ask["order"]["price"]),
        (&Value::from("open"), &Value::from("220.00")),
        "{ask}"
    );
    assert_eq!(bid["order"]["status"], "filled", "{bid}");
    assert_eq!(bid["matches"][0]["price"], "220.00", "{bid}");
    assert_eq!(matches["items"][0]["role"], "seller", "{matches}");
    assert_eq!(matches["items"][0]["price"], "220.00", "{matches}");
    let message = notifications["items"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.starts_with("Your Air Jordan 1") && message.ends_with("sold for $220.00!"),
        "{notifications}"
    );
    assert_eq!(book["size"], "10", "{book}");
    assert_eq!(book["asks"], serde_json::json!([]), "{book}");
}

/// The arguments the README's first command gives the binary:
/// `cargo run --release -- serve --demo   # run: …` is `serve --demo`.
fn run_arguments(readme: &str) -> Vec<String> {
    let first = readme
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.lines().next())
        .expect("the README begins with its commands");
    let command = first.split('#').next().unwrap_or_default();
    let (cargo, arguments) = command
        .split_once(" -- ")
        .expect("the first command is a cargo run with arguments");
    assert!(cargo.trim_start().starts_with("cargo run"), "{first}");
    arguments.split_whitespace().map(str::to_owned).collect()
}

/// The first `sh` block under "## Quick tour".
fn quick_tour(readme: &str) -> String {
    let section = readme
        .split_once("\n## Quick tour\n")
        .map(|(_, section)| section)
        .expect("the README has a quick tour");
    let block = section
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .map(|(block, _)| block)
        .expect("the quick tour is an sh block");
    block.to_owned()
}
