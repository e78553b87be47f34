//! The product page in headless Chromium: `page.mjs` (Playwright) drives
//! Debian's Chromium against a server started here on port 0.
//!
//! `scripts/test` installs Chromium and the page test's npm packages; run
//! alone, this test fails with the command to run when they are missing.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use bidask_tests::{ADMIN, Backend, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_product_page_shows_live_prices_trades_and_the_sold_toast() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    assert!(
        folder.join("node_modules/playwright-core").is_dir(),
        "Playwright is missing: run `npm ci --prefix tests/browser` (scripts/test does)"
    );
    let chromium =
        std::env::var("BIDASK_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        Path::new(&chromium).exists(),
        "Chromium is missing: `apt-get install chromium` (scripts/test does)"
    );
    let app = spawn_app(Backend::Sqlite).await;
    let mut command = tokio::process::Command::new("node");
    command
        .arg(folder.join("page.mjs"))
        .current_dir(&folder)
        .env("BIDASK_URL", &app.address)
        .env("BIDASK_ADMIN_USERNAME", ADMIN.0)
        .env("BIDASK_ADMIN_PASSWORD", ADMIN.1)
        .env("BIDASK_CHROMIUM", &chromium)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(180), command.output())
        .await
        .expect("the page test finishes within three minutes")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "the page test failed:\n{stdout}\n{stderr}"
    );
}
