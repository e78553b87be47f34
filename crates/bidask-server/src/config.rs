//! The command line and environment: one [`ServeConfig`] passed down, never
//! read from the environment deeper in.

use std::net::SocketAddr;
use std::time::Duration;

use clap::builder::{BoolishValueParser, RangedU64ValueParser};
use clap::{Args, Parser, Subcommand};

use crate::origin::AllowedOrigins;
use crate::proxies::TrustedProxies;

/// A year of 366 days: the bound of the settings counted in seconds whose
/// sums with a clock reading must not overflow.
const YEAR_SECS: i64 = 366 * 86_400;

/// `bidask`: a bid/ask marketplace server.
#[derive(Debug, Parser)]
#[command(
    name = "bidask",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The settings of `serve`, when no subcommand is given.
    #[command(flatten)]
    pub serve: ServeConfig,
    /// How logs are written, by every command (after the
    /// subcommand's name, or in the environment). Level: `RUST_LOG`.
    #[arg(
        long,
        env = "BIDASK_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text,
        global = true
    )]
    pub log_format: LogFormat,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for a person (coloured on a terminal).
    Text,
    /// One JSON object per line, for a log collector.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve(Box<ServeConfig>),
    /// Apply the database migrations and exit.
    Migrate(DatabaseConfig),
    /// Copy the embedded SQLite database (and its token secret) to a new
    /// file, while a server runs or not; for PostgreSQL, use pg_dump.
    Backup(BackupConfig),
}

/// What `backup` copies, and where to.
#[derive(Debug, Clone, Args)]
pub struct BackupConfig {
    /// The database to copy.
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// The copy: a file that does not exist yet.
    pub destination: std::path::PathBuf,
}

/// Where the data lives.
#[derive(Debug, Clone, Args)]
pub struct DatabaseConfig {
    /// `postgres://…` for PostgreSQL; by default the embedded SQLite file
    /// `bidask.db` in the working directory.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://bidask.db",
        hide_env_values = true
    )]
    pub database_url: String,
}

/// Everything `serve` needs.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address to listen on, `ip:port` or `host:port` (port 0 picks a free
    /// port).
    #[arg(long, env = "BIDASK_LISTEN", default_value = "127.0.0.1:8080", value_parser = listen_address)]
    pub listen: SocketAddr,
    /// The database.
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// Seed a small sneaker catalog when the catalog is empty.
    #[arg(long, env = "BIDASK_DEMO", value_parser = BoolishValueParser::new(), default_value_t = false, num_args = 0..=1, default_missing_value = "true")]
    pub demo: bool,
    /// HS256 secret for tokens; generated and kept beside the embedded
    /// database when unset.
    #[arg(long, env = "BIDASK_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Lifetime of issued tokens, in seconds (at most a year, so that
    /// expiry times stay in range).
    #[arg(
        long,
        env = "BIDASK_TOKEN_LIFETIME_SECS",
        default_value_t = 86_400,
        value_parser = clap::value_parser!(i64).range(1..=YEAR_SECS)
    )]
    pub token_lifetime_secs: i64,
    /// With `BIDASK_ADMIN_PASSWORD`: make sure this admin account exists.
    #[arg(long, env = "BIDASK_ADMIN_USERNAME")]
    pub admin_username: Option<String>,
    /// The admin account's password.
    #[arg(long, env = "BIDASK_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// Browser origins allowed to call the API and open the feed,
    /// comma-separated, each `scheme://host[:port]`, or `*` for any
    /// (default: same origin only).
    #[arg(
        long,
        env = "BIDASK_ALLOWED_ORIGINS",
        default_value = "",
        hide_default_value = true
    )]
    pub allowed_origins: AllowedOrigins,
    /// Requests per second each user may make (bursts to twice that); 0
    /// turns the limit off.
    #[arg(long, env = "BIDASK_RATE_LIMIT_USER", default_value_t = 100)]
    pub rate_limit_user: u32,
    /// Requests per second each client address may make, on every route
    /// (the API, the feed's upgrade, the page and the operational
    /// endpoints; bursts to twice that); 0 turns the limit off.
    #[arg(long, env = "BIDASK_RATE_LIMIT_ADDRESS", default_value_t = 1_000)]
    pub rate_limit_address: u32,
    /// Registrations and logins per second each client address may make
    /// (bursts to twice that); 0 turns the limit off. Each one costs an
    /// Argon2 hash, tens of milliseconds of a core, so one address must
    /// not be able to spend them all: past its share it gets 429 while
    /// other addresses still sign in.
    #[arg(long, env = "BIDASK_RATE_LIMIT_AUTH", default_value_t = 5)]
    pub rate_limit_auth: u32,
    /// Logins per minute to each account, from all addresses together
    /// (all at once if need be); 0 turns the limit off. Guesses spread
    /// over many addresses each keep within their address's limit; this
    /// one bounds them per account. A client that signed in to the
    /// account, or registered it, in the last 30 days is not held to it,
    /// so a flood of guesses does not lock the owner out.
    #[arg(long, env = "BIDASK_RATE_LIMIT_LOGIN", default_value_t = 10)]
    pub rate_limit_login: u32,
    /// Reverse proxies in front of the server, comma-separated addresses
    /// or networks (such as `127.0.0.1,10.0.0.0/8`): a request from one of
    /// them counts against the per-address limits of the client its
    /// `X-Forwarded-For` names, not the proxy's (default: none).
    #[arg(
        long,
        env = "BIDASK_TRUSTED_PROXIES",
        default_value = "",
        hide_default_value = true
    )]
    pub trusted_proxies: TrustedProxies,
    /// Largest request body, in bytes (an order takes about a hundred).
    #[arg(
        long,
        env = "BIDASK_BODY_LIMIT",
        default_value_t = 16 * 1024,
        value_parser = RangedU64ValueParser::<usize>::new().range(256..=16 * 1024 * 1024)
    )]
    pub body_limit: usize,
    /// Database connections of the pool that requests and the feed read
    /// through (2 when set lower). The group commit has its own besides:
    /// one on SQLite, two on PostgreSQL.
    #[arg(
        long,
        env = "BIDASK_DB_CONNECTIONS",
        default_value_t = 8,
        value_parser = clap::value_parser!(u32).range(1..=1_000)
    )]
    pub db_connections: u32,
    /// Milliseconds a database connection may sit idle before it is tested
    /// ahead of its next use, and replaced if the database restarted
    /// meanwhile (PostgreSQL).
    #[arg(
        long,
        env = "BIDASK_DB_IDLE_CHECK_MS",
        default_value_t = 2_000,
        value_parser = clap::value_parser!(u64).range(100..=3_600_000)
    )]
    pub db_idle_check_ms: u64,
    /// Most orders one user may have resting in one product; past it a
    /// new resting order is 409 `too_many_open_orders` (0: no bound).
    #[arg(long, env = "BIDASK_MAX_OPEN_ORDERS", default_value_t = 1_000)]
    pub max_open_orders: u32,
    /// Most commands committed in one transaction (the writer allocates
    /// room for that many up front).
    #[arg(
        long,
        env = "BIDASK_MAX_BATCH",
        default_value_t = 2_048,
        value_parser = RangedU64ValueParser::<usize>::new().range(1..=65_536)
    )]
    pub max_batch: usize,
    /// Milliseconds between WebSocket heartbeats (and pings); a client
    /// silent for three of them is dropped.
    #[arg(
        long,
        env = "BIDASK_WS_HEARTBEAT_MS",
        default_value_t = 5_000,
        value_parser = clap::value_parser!(u64).range(10..=3_600_000)
    )]
    pub ws_heartbeat_ms: u64,
    /// Events a WebSocket client may have waiting before it is closed
    /// with 4008.
    #[arg(
        long,
        env = "BIDASK_WS_QUEUE",
        default_value_t = 1_024,
        value_parser = RangedU64ValueParser::<usize>::new().range(1..=1_048_576)
    )]
    pub ws_queue: usize,
    /// WebSocket connections held at once; upgrades beyond get 503.
    /// Lowered at start, with a warning, to what the open-file limit
    /// leaves after a reserve for REST and the database (a quarter of
    /// the limit, at most 1,000). From 1 to 10,000,000.
    #[arg(
        long,
        env = "BIDASK_WS_MAX_CONNECTIONS",
        default_value_t = 19_000,
        value_parser = RangedU64ValueParser::<usize>::new().range(1..=10_000_000)
    )]
    pub ws_max_connections: usize,
    /// HTTP connections held at once from one client address (an IPv6
    /// /64 counts as one) before their upgrade to a WebSocket; one more is
    /// answered 503 and closed. Lowered at start, with a warning, to a
    /// quarter of what the open-file limit leaves for HTTP (the reserve
    /// beside the WebSockets, less the process's own files: 872 under a
    /// limit of 20,000), which all clients together may not pass either.
    /// Trusted proxies are not counted; 0 for no bound. A browser holds
    /// six.
    #[arg(
        long,
        env = "BIDASK_HTTP_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 128
    )]
    pub http_max_connections_per_address: usize,
    /// WebSocket connections held at once from one client address (an
    /// IPv6 /64 counts as one), so that one client cannot take every
    /// place; 0 for no bound.
    #[arg(
        long,
        env = "BIDASK_WS_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 1_000
    )]
    pub ws_max_connections_per_address: usize,
    /// Subscriptions per WebSocket connection.
    #[arg(
        long,
        env = "BIDASK_WS_MAX_SUBSCRIPTIONS",
        default_value_t = 64,
        value_parser = RangedU64ValueParser::<usize>::new().range(1..=10_000)
    )]
    pub ws_max_subscriptions: usize,
    /// Messages per second a WebSocket client may send (0: unlimited).
    #[arg(long, env = "BIDASK_WS_MESSAGES_PER_SEC", default_value_t = 20)]
    pub ws_messages_per_sec: u32,
    /// Largest WebSocket message a client may send, in bytes.
    #[arg(
        long,
        env = "BIDASK_WS_MAX_MESSAGE_BYTES",
        default_value_t = 16 * 1024,
        value_parser = RangedU64ValueParser::<usize>::new().range(64..=16 * 1024 * 1024)
    )]
    pub ws_max_message_bytes: usize,
    /// Kernel send buffer of each connection, in bytes (SO_SNDBUF); by
    /// default the kernel sizes it. A small one bounds what a WebSocket
    /// client that stopped reading holds in the kernel, so its queue, and
    /// its 4008, come sooner.
    #[arg(long, env = "BIDASK_SEND_BUFFER")]
    pub send_buffer: Option<u32>,
    /// Seconds a request may take before it is answered 503: a database
    /// that hangs instead of failing (a frozen host, a lost network path)
    /// must not hold requests, and their connections, for ever. Longer
    /// than the writer's own 10 s bound on a commit, which answers first.
    /// Also the most a request's body may take to arrive (408), the most
    /// a connection may take to send a request's head, or stay idle
    /// between requests, and the longest a response may go unread,
    /// before it is closed. At most a day.
    #[arg(
        long,
        env = "BIDASK_REQUEST_TIMEOUT_SECS",
        default_value_t = 15,
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    pub request_timeout_secs: u64,
    /// How long feed events are kept for resumes (`since_seq`), in
    /// seconds; each channel's newest event is kept whatever its age.
    /// 0 keeps every event.
    #[arg(
        long,
        env = "BIDASK_FEED_RETENTION_SECS",
        default_value_t = 7 * 86_400,
        value_parser = clap::value_parser!(u64).range(0..=10 * YEAR_SECS as u64)
    )]
    pub feed_retention_secs: u64,
    /// Seconds to wait for in-flight requests at shutdown.
    #[arg(
        long,
        env = "BIDASK_SHUTDOWN_TIMEOUT_SECS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(0..=3_600)
    )]
    pub shutdown_timeout_secs: u64,
}

impl ServeConfig {
    /// The WebSocket gateway's limits.
    pub fn gateway(&self) -> crate::gateway::GatewaySettings {
        crate::gateway::GatewaySettings {
            // The command line refuses values out of range; a config
            // built in code (tests, an embedder) is held to the same floor.
            heartbeat: Duration::from_millis(self.ws_heartbeat_ms.max(10)),
            queue: self.ws_queue.max(1),
            max_connections: self.ws_max_connections.max(1),
            max_connections_per_address: self.ws_max_connections_per_address,
            max_subscriptions: self.ws_max_subscriptions.max(1),
            messages_per_sec: self.ws_messages_per_sec,
            max_message_bytes: self.ws_max_message_bytes.max(64),
            // Half the pool, so that REST keeps the other half.
            database_queries: usize::try_from(self.db_connections / 2).unwrap_or(1),
            allowed_origins: self.allowed_origins.0.clone(),
        }
    }

    /// How long feed events are kept, `None` for ever.
    pub fn feed_retention(&self) -> Option<Duration> {
        (self.feed_retention_secs > 0).then(|| Duration::from_secs(self.feed_retention_secs))
    }

    /// How the database is connected to: `connections` at most.
    pub fn store_options(&self, connections: u32) -> bidask_store::StoreOptions {
        bidask_store::StoreOptions {
            max_connections: connections,
            // The command line refuses less; a config built in code is
            // held to the same floor.
            idle_check: Duration::from_millis(self.db_idle_check_ms.max(100)),
            ..bidask_store::StoreOptions::default()
        }
    }

    /// How long shutdown waits for requests in flight.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }
}

impl Cli {
    /// The configuration of the command to run.
    pub fn command(self) -> Command {
        self.command.unwrap_or(Command::Serve(Box::new(self.serve)))
    }
}

/// `ip:port`, or `host:port` resolved once, at start. A name with both
/// kinds of address (`localhost` is 127.0.0.1 and ::1 on Debian) means
/// its IPv4 one: a server on ::1 alone would not answer the
/// `http://127.0.0.1:…` most clients and guides use.
fn listen_address(value: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(address) = value.parse() {
        return Ok(address);
    }
    let addresses: Vec<SocketAddr> = value
        .to_socket_addrs()
        .map_err(|error| format!("{value:?} is not ip:port or host:port ({error})"))?
        .collect();
    addresses
        .iter()
        .find(|address| address.is_ipv4())
        .or(addresses.first())
        .copied()
        .ok_or_else(|| format!("{value:?} names no address"))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command, LogFormat};

    fn origins(value: &str) -> Result<Vec<String>, String> {
        let cli = Cli::try_parse_from(["bidask", "--allowed-origins", value])
            .map_err(|error| error.to_string())?;
        let Command::Serve(config) = cli.command() else {
            return Err("not serve".to_owned());
        };
        Ok(config
            .allowed_origins
            .0
            .iter()
            .map(|origin| format!("{origin:?}"))
            .collect())
    }

    #[test]
    fn allowed_origins_are_a_trimmed_list_and_a_bad_one_names_itself() {
        assert_eq!(
            origins("https://a.example, https://B.example:8443").map(|list| list.len()),
            Ok(2)
        );
        assert_eq!(origins("*").map(|list| list.join("")), Ok("Any".to_owned()));
        assert_eq!(origins("").map(|list| list.len()), Ok(0), "set but empty");
        assert_eq!(
            Cli::try_parse_from(["bidask"])
                .ok()
                .map(|cli| match cli.command() {
                    Command::Serve(config) => config.allowed_origins.0.len(),
                    Command::Migrate(_) | Command::Backup(_) => usize::MAX,
                }),
            Some(0),
            "unset"
        );
        let refused = origins("https://a.example,a.example");
        assert!(
            refused
                .as_ref()
                .is_err_and(|message| message.contains("\"a.example\" is not an origin")),
            "{refused:?}"
        );
    }

    #[test]
    fn the_listening_address_may_name_a_host() {
        let listen = |value: &str| {
            Cli::try_parse_from(["bidask", "serve", "--listen", value])
                .map(|cli| match cli.command() {
                    Command::Serve(config) => config.listen.to_string(),
                    Command::Migrate(_) | Command::Backup(_) => String::new(),
                })
                .map_err(|error| error.to_string())
        };
        assert_eq!(listen("0.0.0.0:80"), Ok("0.0.0.0:80".to_owned()));
        assert_eq!(listen("[::1]:8080"), Ok("[::1]:8080".to_owned()));
        assert_eq!(listen("localhost:8080"), Ok("127.0.0.1:8080".to_owned()));
        for refused in [
            "localhost",
            "127.0.0.1",
            "127.0.0.1:99999",
            "localhost:http",
        ] {
            let message = listen(refused);
            assert!(
                message
                    .as_ref()
                    .is_err_and(|message| message.contains("--listen")),
                "{refused}: {message:?}"
            );
        }
    }

    #[test]
    fn the_log_format_is_one_of_two_and_reaches_every_command() {
        let format = |args: &[&str]| Cli::try_parse_from(args).map(|cli| cli.log_format);
        assert_eq!(format(&["bidask"]).ok(), Some(LogFormat::Text));
        assert_eq!(
            format(&["bidask", "--log-format", "json"]).ok(),
            Some(LogFormat::Json)
        );
        assert_eq!(
            format(&["bidask", "serve", "--log-format", "json"]).ok(),
            Some(LogFormat::Json)
        );
        assert_eq!(
            format(&["bidask", "migrate", "--log-format", "json"]).ok(),
            Some(LogFormat::Json)
        );
        assert!(format(&["bidask", "--log-format", "jsn"]).is_err());
    }

    /// Each bounded setting takes its bounds and refuses past them by
    /// name, at start, instead of overflowing a clock or an allocation
    /// later (a token lifetime of 10^13 s once wrapped every token's
    /// expiry).
    #[test]
    fn numeric_settings_are_refused_out_of_range_by_name() {
        let parse = |flag: &str, value: &str| {
            Cli::try_parse_from(["bidask", "serve", &format!("{flag}={value}")])
                .map(|cli| match cli.command() {
                    Command::Serve(config) => format!("{config:?}"),
                    Command::Migrate(_) | Command::Backup(_) => String::new(),
                })
                .map_err(|error| error.to_string())
        };
        for (flag, lowest, highest, below, above) in [
            ("--token-lifetime-secs", "1", "31622400", "0", "31622401"),
            ("--max-batch", "1", "65536", "0", "65537"),
            ("--ws-heartbeat-ms", "10", "3600000", "9", "3600001"),
            ("--ws-queue", "1", "1048576", "0", "1048577"),
            ("--ws-max-message-bytes", "64", "16777216", "63", "16777217"),
            ("--feed-retention-secs", "0", "316224000", "-1", "316224001"),
            ("--shutdown-timeout-secs", "0", "3600", "-1", "3601"),
            ("--body-limit", "256", "16777216", "255", "16777217"),
            ("--db-connections", "1", "1000", "0", "1001"),
            ("--db-idle-check-ms", "100", "3600000", "99", "3600001"),
            ("--ws-max-subscriptions", "1", "10000", "0", "10001"),
            ("--ws-max-connections", "1", "10000000", "0", "10000001"),
            // Past about 2^63 s, hyper's deadline for a request's head
            // overflowed in every connection, after the server had said it
            // was listening.
            ("--request-timeout-secs", "1", "86400", "0", "86401"),
        ] {
            for value in [lowest, highest] {
                let parsed = parse(flag, value);
                assert!(parsed.is_ok(), "{flag} {value}: {parsed:?}");
            }
            for value in [below, above, "99999999999999999999"] {
                let refused = parse(flag, value);
                assert!(
                    refused
                        .as_ref()
                        .is_err_and(|message| message.contains(flag)),
                    "{flag} {value}: {refused:?}"
                );
            }
        }
    }
}
