//! The server as a process of its own, so a test can `kill -9` it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::{ADMIN, JWT_SECRET};

/// A running `bidask serve` process.
pub struct ServerProcess {
    child: Child,
    /// `http://127.0.0.1:port`.
    pub address: String,
}

impl ServerProcess {
    /// Starts the server binary `program` (a test's
    /// `env!("CARGO_BIN_EXE_bidask-under-test")`) on `database_url` and
    /// waits until it listens.
    pub fn start(program: &str, database_url: &str) -> Self {
        Self::start_with(program, database_url, &[])
    }

    /// [`ServerProcess::start`] with more settings in its environment.
    pub fn start_with(program: &str, database_url: &str, settings: &[(&str, &str)]) -> Self {
        let mut command = Command::new(program);
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("DATABASE_URL", database_url)
            .env("BIDASK_JWT_SECRET", JWT_SECRET)
            .env("BIDASK_ADMIN_USERNAME", ADMIN.0)
            .env("BIDASK_ADMIN_PASSWORD", ADMIN.1)
            .envs(settings.iter().copied());
        Self::spawn(command)
    }

    /// Starts `command`, a `bidask serve` listening on port 0, with JSON
    /// logs (the address is read from them), and waits until it listens.
    pub fn spawn(command: Command) -> Self {
        Self::spawn_until(command, listening_address)
    }

    /// Starts `command` like [`ServerProcess::spawn`], but returns as soon
    /// as it says it is starting, before it listens (`address` is empty).
    pub fn spawn_starting(command: Command) -> Self {
        Self::spawn_until(command, |line| {
            line.contains("starting: migrations").then(String::new)
        })
    }

    /// Starts `command` and waits (at most 60 s) for the first log line
    /// that `wanted` reads an address from.
    fn spawn_until(mut command: Command, wanted: fn(&str) -> Option<String>) -> Self {
        let mut child = command
            .env("BIDASK_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the server binary starts");
        let stdout = child.stdout.take().expect("the server's stdout");
        let (sender, receiver) = mpsc::channel();
        // Keep draining the log so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sender = Some(sender);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(address) = wanted(&line)
                    && let Some(sender) = sender.take()
                {
                    let _ = sender.send(address);
                }
            }
        });
        let address = match receiver.recv_timeout(Duration::from_secs(60)) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                panic!("the server did not say what was awaited within 60 s");
            }
        };
        Self { child, address }
    }

    /// `SIGTERM`, then waits (at most 60 s) for the process to exit;
    /// returns its exit code.
    pub fn terminate(mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM was not delivered");
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().expect("the server can be waited for") {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the server did not exit within 60 s of SIGTERM");
    }

    /// Sends `signal` (`TERM`, `INT`) and returns at once.
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIG{signal} was not delivered");
    }

    /// The exit code once the process has exited, waiting at most
    /// `within`; `None` while it still runs.
    pub fn exited_within(&mut self, within: Duration) -> Option<Option<i32>> {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("the server can be waited for") {
                return Some(status.code());
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `kill -9`: no shutdown, no drain.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL is delivered");
        self.child.wait().expect("the killed server is reaped");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address in the JSON log line `bidask listening on http://…`.
fn listening_address(line: &str) -> Option<String> {
    let log: serde_json::Value = serde_json::from_str(line).ok()?;
    let message = log["fields"]["message"].as_str()?;
    let address = message.strip_prefix("bidask listening on ")?;
    Some(address.to_owned())
}
