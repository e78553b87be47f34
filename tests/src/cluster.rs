//! A private PostgreSQL server that a test may stop and start, for the
//! outage tests (stopping the shared test server would break the others),
//! or that speaks TLS, for the test of encrypted connections (the shared
//! one stays plain, as the benchmarks that use it measured it).

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// A PostgreSQL cluster in a temporary directory.
pub struct Cluster {
    directory: TempDir,
    bin: PathBuf,
    port: u16,
    tls: bool,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

impl Cluster {
    /// Creates and starts a cluster. Needs `BIDASK_TEST_PG_BIN` (set by
    /// `scripts/test-postgres`), the directory of `initdb` and `pg_ctl`.
    pub fn start() -> Self {
        Self::create(None)
    }

    /// Creates and starts a cluster that offers TLS, with a certificate for
    /// `name` (`127.0.0.1` to be what clients connect to) issued by a
    /// certificate authority of its own ([`Cluster::ca_file`]), which no
    /// system trusts.
    pub fn start_with_tls(name: &str) -> Self {
        Self::create(Some(name))
    }

    fn create(tls: Option<&str>) -> Self {
        let bin = PathBuf::from(std::env::var("BIDASK_TEST_PG_BIN").unwrap_or_else(|_| {
            panic!("BIDASK_TEST_PG_BIN is not set: run the tests with scripts/test")
        }));
        let directory = tempfile::Builder::new()
            .prefix("bidask-cluster-")
            .tempdir_in("/tmp")
            .expect("a temporary directory");
        let port = free_port();
        let cluster = Self {
            directory,
            bin,
            port,
            tls: tls.is_some(),
        };
        if let Some(name) = tls {
            cluster.issue_certificates(name);
        }
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(cluster.directory.path())
                .status()
                .expect("chown runs");
            assert!(status.success(), "chown of the cluster directory failed");
        }
        cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.data(),
                "-U",
                "bidask",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
        );
        cluster.resume();
        cluster
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://bidask@127.0.0.1:{}/postgres", self.port)
    }

    /// [`Cluster::url`] with `sslmode=verify-full` and this cluster's
    /// authority as `sslrootcert`.
    pub fn verified_url(&self) -> String {
        format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            self.url(),
            self.ca_file().display()
        )
    }

    /// The certificate of the authority that issued the server's (PEM).
    pub fn ca_file(&self) -> PathBuf {
        self.directory.path().join("ca.pem")
    }

    /// Writes the authority's certificate and the server's certificate for
    /// `name` and its key, the key readable by its owner only, as
    /// PostgreSQL requires.
    fn issue_certificates(&self, name: &str) {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        use std::os::unix::fs::PermissionsExt;

        let mut authority = CertificateParams::default();
        authority.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        authority
            .distinguished_name
            .push(DnType::CommonName, "bidask test authority");
        let authority_key = KeyPair::generate().expect("a key for the authority");
        let authority_certificate = authority
            .self_signed(&authority_key)
            .expect("the authority's certificate");
        let issuer = Issuer::new(authority, authority_key);

        let mut server =
            CertificateParams::new(vec![name.to_owned()]).expect("a valid subject name");
        server.distinguished_name.push(DnType::CommonName, name);
        let server_key = KeyPair::generate().expect("a key for the server");
        let server_certificate = server
            .signed_by(&server_key, &issuer)
            .expect("the server's certificate");

        let path = self.directory.path();
        std::fs::write(self.ca_file(), authority_certificate.pem()).expect("ca.pem written");
        std::fs::write(path.join("server.pem"), server_certificate.pem())
            .expect("server.pem written");
        let key = path.join("server.key");
        std::fs::write(&key, server_key.serialize_pem()).expect("server.key written");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
            .expect("server.key made private");
    }

    /// Stops the server at once, as a crash would (`-m immediate`).
    pub fn halt(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    /// Starts (or restarts) the server and waits until it accepts connections.
    pub fn resume(&self) {
        let directory = self.directory.path().display();
        let mut options = format!(
            "-p {} -k {directory} -c listen_addresses=127.0.0.1",
            self.port
        );
        if self.tls {
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={directory}/server.pem \
                 -c ssl_key_file={directory}/server.key"
            ));
        }
        let log = self.directory.path().join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log.display().to_string(),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// Stops every process of the server (SIGSTOP) without ending it: it
    /// keeps its connections and answers nothing on them, as a frozen host
    /// or a lost network path would.
    pub fn freeze(&self) {
        assert!(self.signal("STOP"), "kill -STOP of the postmaster failed");
    }

    /// Lets a frozen server go on (SIGCONT).
    pub fn thaw(&self) {
        assert!(self.signal("CONT"), "kill -CONT of the postmaster failed");
    }

    /// Sends `signal` to the postmaster first, so that it forks no new
    /// backend meanwhile, then to the children it has; whether the
    /// postmaster got it is the result (a child may have exited since).
    fn signal(&self, signal: &str) -> bool {
        let Some(postmaster) = self.postmaster() else {
            return false;
        };
        let send = |pids: &[u32]| {
            Command::new("kill")
                .arg(format!("-{signal}"))
                .args(pids.iter().map(u32::to_string))
                .status()
                .is_ok_and(|status| status.success())
        };
        let delivered = send(&[postmaster]);
        let children = children_of(postmaster);
        if !children.is_empty() {
            send(&children);
        }
        delivered
    }

    /// The postmaster's pid, from its pid file.
    fn postmaster(&self) -> Option<u32> {
        std::fs::read_to_string(Path::new(&self.data()).join("postmaster.pid"))
            .ok()
            .and_then(|file| file.lines().next()?.trim().parse::<u32>().ok())
    }

    fn data(&self) -> String {
        self.directory.path().join("data").display().to_string()
    }

    /// A PostgreSQL tool, run as the `postgres` user when we are root
    /// (PostgreSQL refuses to run as root).
    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let output = self
            .command(program)
            .args(args)
            .output()
            .expect("a PostgreSQL tool runs");
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // A test that failed while the server was frozen: a stopped
        // postmaster would not hear pg_ctl.
        let _ = self.signal("CONT");
        let _ = self
            .command("pg_ctl")
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
    }
}

/// The processes whose parent is `parent`, from /proc.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            // `pid (comm) state ppid …`; the name may hold spaces and parentheses.
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let (_, rest) = stat.rsplit_once(')')?;
            let ppid = rest.split_whitespace().nth(1)?.parse::<u32>().ok()?;
            (ppid == parent).then_some(pid)
        })
        .collect()
}

/// A port nothing listens on right now, below Linux's ephemeral range
/// (32768-60999): a port from that range can be taken by some outgoing
/// connection before the cluster starts on it (see scripts/test-postgres).
fn free_port() -> u16 {
    const FIRST: u32 = 26_000;
    const COUNT: u32 = 6_000;
    // Clusters of one test process, and of concurrent ones, start apart.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let taken = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let start = std::process::id()
        .wrapping_mul(7_919)
        .wrapping_add(taken * 101)
        % COUNT;
    (0..COUNT)
        .filter_map(|offset| u16::try_from(FIRST + (start + offset) % COUNT).ok())
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port below the ephemeral range")
}
