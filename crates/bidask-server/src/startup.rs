//! Building the application and running it until shutdown.
//!
//! [`Application::build`] does everything that can fail (connect, bind
//! the port, migrate, bootstrap accounts, rebuild every book) before
//! anything is served, so tests can start it on port 0 and read the
//! address.
//!
//! Shutdown drains in this order: stop accepting connections, close
//! WebSockets with 1001 and let in-flight requests finish; stop pruning
//! (a prune only deletes what is old, so cutting one short loses
//! nothing); close the market actors' queues so they finish what is
//! queued; let the writer commit everything that was accepted; close the
//! database pool.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bidask_store::{NewUser, Store, StoreError, StoreOptions};
use tokio::net::{TcpListener, TcpSocket};

use crate::auth::{Password, Role, Tokens, Username, password, token};
use crate::catalog::{Catalog, Product};
use crate::clock::now_micros;
use crate::config::{BackupConfig, DatabaseConfig, ServeConfig};
use crate::gateway::Gateway;
use crate::gateway::hub::{Hub, Windows};
use crate::housekeeping::Housekeeping;
use crate::http::limits::RateLimits;
use crate::http::{ApiSettings, AppContext, AppState};
use crate::market::replica::Replicas;
use crate::market::{FencedWriter, Markets, RuntimeOptions, WriterDone};
use crate::serve::ConnectionBounds;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The database refused or is unreachable.
    #[error("database: {0}")]
    Store(#[from] StoreError),
    /// The market runtime could not start.
    #[error("markets: {0}")]
    Markets(#[from] crate::market::StartError),
    /// The port could not be bound or the fan-out thread could not be
    /// started.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A setting is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// The listening address could not be bound (taken, not this host's,
    /// or a privileged port).
    #[error("cannot listen on {address} (--listen, BIDASK_LISTEN): {source}")]
    Listen {
        /// The address asked for.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The task serving connections panicked: a bug.
    #[error("server task: {0}")]
    ServerTask(#[source] tokio::task::JoinError),
    /// The writer's thread panicked before its queue was committed: a bug.
    #[error("the writer stopped without committing its queue")]
    WriterPanicked,
    /// Another server claimed the database while this one's writer had
    /// lost its lock: this one stopped rather than write over it.
    #[error(
        "another bidask server claimed the database while this one had lost its connection; \
         stopped without writing over it (start this one again once only one server runs)"
    )]
    Replaced,
    /// A second stop signal came during start-up.
    #[error("stopped by a second signal during start-up, before serving anything")]
    InterruptedStarting,
    /// A second stop signal came during the drain.
    #[error(
        "stopped by a second signal before the drain ended: unanswered requests are lost, answered ones are committed"
    )]
    Interrupted,
}

/// A built application, bound and ready to run.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    markets: Arc<Markets>,
    writer: WriterDone,
    store: Store,
    hub: Arc<Hub>,
    housekeeping: Housekeeping,
    shutdown_timeout: Duration,
    bounds: ConnectionBounds,
}

/// Binds the port, to listen on later. With `send_buffer`, every accepted
/// connection inherits that kernel send buffer (Linux copies it from the
/// listening socket). A port another process listens on is refused here.
fn bind(address: SocketAddr, send_buffer: Option<u32>) -> std::io::Result<TcpSocket> {
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if let Some(size) = send_buffer {
        socket.set_send_buffer_size(size)?;
    }
    socket.bind(address)?;
    Ok(socket)
}

/// Refuses a SQLite URL a server cannot run on: one in memory (or
/// SQLite's temporary database, an empty path), which each pooled
/// connection would get anew, so that the migrations land in one and the
/// next query reads another; and one opened read-only, which takes no
/// writer's lock and so would start beside the server that writes the
/// file, and then commit nothing.
fn servable(url: &str) -> Result<(), StartupError> {
    let Some(sqlite) = bidask_store::SqliteUrl::parse(url) else {
        return Ok(());
    };
    if sqlite.file.is_none() {
        return Err(StartupError::Config(
            "DATABASE_URL names a SQLite database in memory (or a temporary one), which each \
             connection would get anew and which ends with the process: name a file, such as \
             sqlite:bidask.db"
                .to_owned(),
        ));
    }
    if sqlite.read_only {
        return Err(StartupError::Config(
            "DATABASE_URL opens the SQLite file read-only (mode=ro or immutable), and a server \
             writes: leave the mode out (`bidask backup` copies a live database)"
                .to_owned(),
        ));
    }
    Ok(())
}

/// Applies the migrations of the configured database.
///
/// Changing the schema under a server that writes to the database (an
/// older one, which a new column or check may break mid-stream) is
/// refused as a second server is: the writer's lock is taken first, and
/// the database claimed after, as `serve` does, so that an older server
/// that had lost its lock for a moment (a database restart) stops rather
/// than take it back and write on the new schema. With nothing to apply
/// the lock is not needed, and `migrate` beside a running server only
/// checks what sqlx checks: no migration newer than this bidask's, none
/// changed, none half applied.
pub async fn migrate(config: &DatabaseConfig) -> Result<(), StartupError> {
    let store = Store::connect_lazy(&config.database_url, &StoreOptions::default())?;
    store.reach().await?;
    let mut writer = None;
    if store.has_pending_migrations().await? {
        let mut committer = store.committer();
        let waiting = warn_while_the_lock_waits();
        let fenced = committer.fence().await;
        waiting.abort();
        fenced?;
        writer = Some(committer);
    }
    store.migrate().await?;
    warn_if_others_may_read(&config.database_url);
    if let Some(mut committer) = writer {
        committer.claim().await?;
        committer.close().await;
    }
    store.close().await;
    Ok(())
}

/// The directory holding `file`: its parent, or the working directory
/// for a bare name.
fn directory_of(file: &Path) -> &Path {
    match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Says so when users other than its owner may read or write the
/// embedded database (or its `-wal` and `-shm` files, which hold recent
/// pages), which holds password hashes, or the token secret kept beside
/// it, with which anyone can sign a token. Bidask makes them for their
/// owner only, but a file that exists keeps the permissions it has (one a
/// bidask before that made, a copy, a restore), so it is pointed out, not
/// changed under its owner. A directory others cannot enter keeps them
/// out whatever the files' modes, so the one holding them is looked at
/// (not those above it: one of them may keep others out too, and the
/// warning then says more than it needs to).
fn warn_if_others_may_read(url: &str) {
    use std::os::unix::fs::PermissionsExt;

    let Some(database) = bidask_store::sqlite_file(url) else {
        return;
    };
    let directory = directory_of(&database);
    // The file bits that count: the group's if the group may enter the
    // directory, the others' if they may.
    let enter = std::fs::metadata(directory)
        .map_or(0o011, |metadata| metadata.permissions().mode() & 0o011);
    let exposed =
        if enter & 0o010 != 0 { 0o060 } else { 0 } | if enter & 0o001 != 0 { 0o006 } else { 0 };
    let journal = |suffix: &str| {
        let mut name = database.clone().into_os_string();
        name.push(suffix);
        PathBuf::from(name)
    };
    let hashes = "it holds password hashes, and users other than its owner may read or write \
        it: `chmod 600` it, and the database's -wal and -shm files";
    let files = [
        (database.clone(), hashes),
        (journal("-wal"), hashes),
        (journal("-shm"), hashes),
        (
            bidask_store::beside(&database, "jwt-secret"),
            "the kept token secret, with which anyone can sign a token, can be read or \
             written by users other than its owner: `chmod 600` it",
        ),
    ];
    for (path, warning) in files {
        let Ok(metadata) = std::fs::metadata(&path) else {
            continue;
        };
        let mode = metadata.permissions().mode() & 0o777;
        if mode & exposed != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "{warning}");
        }
    }
}

/// Says soon that the writer's lock is not free, rather than only when
/// the wait ends half a minute later; after the 2 s a connection may
/// take, so that a database that does not answer is told as such.
fn warn_while_the_lock_waits() -> tokio::task::JoinHandle<()> {
    tokio::spawn(async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        tracing::warn!(
            "waiting for the writer's lock: another bidask server writes to this database, \
             or a stopped one's last commit is finishing (up to 30 s)"
        );
    })
}

/// Copies the embedded database to `config.destination`, with its token
/// secret beside the copy when it keeps one (not when the secret comes
/// from `BIDASK_JWT_SECRET`), so that a server started on the copy accepts
/// the tokens it had signed.
pub async fn back_up(config: &BackupConfig) -> Result<(), StartupError> {
    let url = &config.database.database_url;
    let destination = &config.destination;
    if bidask_store::Backend::of_url(url) == Some(bidask_store::Backend::Postgres) {
        return Err(StoreError::BackupUnsupported.into());
    }
    // Connecting would create a missing file, empty; that is no backup of
    // anything, and neither is a database in memory.
    match bidask_store::SqliteUrl::parse(url).map(|sqlite| sqlite.file) {
        Some(Some(source)) if !source.exists() => {
            return Err(StartupError::Config(format!(
                "there is no database at {} (DATABASE_URL)",
                source.display()
            )));
        }
        Some(None) => {
            return Err(StartupError::Config(
                "an in-memory database has nothing to back up (DATABASE_URL)".to_owned(),
            ));
        }
        None if bidask_store::Backend::of_url(url).is_some() => {
            return Err(StartupError::Config(
                "DATABASE_URL's path is not UTF-8 once percent-decoded".to_owned(),
            ));
        }
        // Another scheme: connecting says which ones there are.
        _ => {}
    }
    let directory = directory_of(destination);
    match std::fs::metadata(directory) {
        Ok(metadata) if metadata.is_dir() => {}
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(StartupError::Config(format!(
                "cannot write the backup into {}: {error}",
                directory.display()
            )));
        }
        _ => {
            return Err(StartupError::Config(format!(
                "there is no directory {} to write the backup into",
                directory.display()
            )));
        }
    }
    let secret_copy = bidask_store::beside(destination, "jwt-secret");
    for path in [destination, &secret_copy] {
        if path.symlink_metadata().is_ok() {
            return Err(StartupError::Config(format!(
                "{} already exists: a backup never replaces a file",
                path.display()
            )));
        }
    }
    // Read-only: a backup must not change what it copies, not even by the
    // checkpoint a last connection makes when it closes.
    let read_only = bidask_store::with_sqlite_mode(url, "ro");
    let store = Store::connect_lazy(&read_only, &StoreOptions::default())?;
    store.reach().await?;
    let started = std::time::Instant::now();
    // The secret first: a copy of the database whose secret is missing
    // would sign everyone out when restored.
    let secret = match secret_path(url).filter(|path| path.exists()) {
        Some(path) => {
            let secret = std::fs::read(&path).map_err(|error| {
                StartupError::Config(format!("cannot read {}: {error}", path.display()))
            })?;
            bidask_store::backup::write_new(&secret_copy, &secret).map_err(|error| {
                StartupError::Config(format!("cannot write {}: {error}", secret_copy.display()))
            })?;
            true
        }
        None => false,
    };
    let copied = store.back_up(destination).await;
    store.close().await;
    if let Err(error) = copied {
        if secret {
            let _ = std::fs::remove_file(&secret_copy);
        }
        return Err(error.into());
    }
    let bytes = std::fs::metadata(destination)?.len();
    tracing::info!(
        destination = %destination.display(),
        bytes,
        seconds = started.elapsed().as_secs_f64(),
        secret,
        "backup written and checked"
    );
    Ok(())
}

impl Application {
    /// Connects, binds, takes the writer's lock, migrates, bootstraps,
    /// claims the database and rebuilds everything.
    pub async fn build(config: ServeConfig) -> Result<Self, StartupError> {
        servable(&config.database.database_url)?;
        let admin = admin_account(&config)?;
        let store = Store::connect_lazy(
            &config.database.database_url,
            &config.store_options(config.db_connections.max(2)),
        )?;
        store.reach().await?;
        // Bound before the claim below, which stops an older server that
        // lost its lock even if this one then cannot start; listening only
        // once built, so that meanwhile clients are refused at once rather
        // than left waiting in the backlog.
        let cannot_listen = |source| StartupError::Listen {
            address: config.listen,
            source,
        };
        let socket = bind(config.listen, config.send_buffer).map_err(cannot_listen)?;
        // Everything below writes to or reads what earlier servers
        // committed: the writer takes its lock first, which waits for the
        // last commit of one that died and keeps out one that still runs
        // (before it could migrate, make a secret or change the admin),
        // until this server stops.
        let writer_url = config.database.database_url.clone();
        let writer_options = config.store_options(1);
        let waiting = warn_while_the_lock_waits();
        let writer =
            FencedWriter::start(move || Store::connect_lazy(&writer_url, &writer_options)).await;
        waiting.abort();
        let writer = writer?;
        store.check_writable().await?;
        store.migrate().await?;
        warn_if_others_may_read(&config.database.database_url);
        let secret = jwt_secret(&config)?;
        let tokens = Tokens::new(&secret, config.token_lifetime_secs);
        ensure_admin(&store, admin).await?;
        // After everything that can fail on a setting, since the claim
        // stops an older server even if this one then cannot start; before
        // the state this one continues from is read.
        let writer = writer.claim().await?;

        let products = store
            .products()
            .await?
            .into_iter()
            .map(Product::from_record)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| StoreError::Corrupt(error.to_string()))?;
        let catalog = Arc::new(Catalog::new(products));
        let replicas = Arc::new(Replicas::default());
        let mut gateway_settings = config.gateway();
        let open_file_limit = crate::open_files::raise();
        gateway_settings.max_connections =
            crate::open_files::websocket_room(gateway_settings.max_connections, open_file_limit);
        let http_room = crate::open_files::http_room(open_file_limit);
        let hub = Hub::start(Windows::default(), gateway_settings.heartbeat)?;
        let (markets, writer) = Markets::start(
            store.clone(),
            writer,
            Arc::clone(&catalog),
            replicas,
            Arc::clone(&hub) as Arc<dyn crate::bus::Bus>,
            RuntimeOptions {
                max_batch: config.max_batch,
                max_open_orders: config.max_open_orders,
                ..RuntimeOptions::default()
            },
        )
        .await?;
        if config.demo && catalog.is_empty() {
            for record in crate::demo::catalog(|| markets.next_product_id(), now_micros()) {
                markets.create_product(record).await.map_err(|error| {
                    StartupError::Config(format!("seeding the demo catalog: {error}"))
                })?;
            }
            tracing::info!(products = catalog.all().len(), "seeded the demo catalog");
        }
        let housekeeping = Housekeeping::spawn(store.clone(), config.feed_retention());

        let state = AppState::new(AppContext {
            store: store.clone(),
            catalog,
            markets: Arc::clone(&markets),
            tokens,
            metrics: crate::recorder::handle(),
            known_users: Arc::new(Mutex::new(HashMap::new())),
            keys_in_flight: Arc::new(Mutex::new(HashSet::new())),
            catalog_lock: Arc::new(tokio::sync::Mutex::new(())),
            gateway: Gateway::start(Arc::clone(&hub), gateway_settings),
            limits: RateLimits::new(
                config.rate_limit_user,
                config.rate_limit_address,
                config.rate_limit_auth,
                config.rate_limit_login,
            ),
            proxies: config.trusted_proxies.clone(),
        });
        let router = crate::http::router(
            state,
            &ApiSettings {
                body_limit: config.body_limit,
                request_timeout: Duration::from_secs(config.request_timeout_secs),
                allowed_origins: config.allowed_origins.0.clone(),
            },
        );
        let listener = socket.listen(1_024).map_err(cannot_listen)?;
        Ok(Self {
            listener,
            router,
            markets,
            writer,
            store,
            hub,
            housekeeping,
            shutdown_timeout: config.shutdown_timeout(),
            bounds: ConnectionBounds {
                timeout: Duration::from_secs(config.request_timeout_secs),
                per_address: crate::open_files::address_share(
                    config.http_max_connections_per_address,
                    http_room,
                ),
                room: http_room,
                proxies: config.trusted_proxies.clone(),
            },
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, StartupError> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves until `shutdown` resolves, then drains in order (see the
    /// module docs).
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let Self {
            listener,
            router,
            markets,
            writer,
            store,
            hub,
            housekeeping,
            shutdown_timeout,
            bounds,
        } = self;
        let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
        let replaced = Arc::clone(&markets);
        let server = crate::serve::serve(listener, router, bounds, async move {
            tokio::select! {
                () = shutdown => {}
                () = replaced.replaced() => {}
            }
            let _ = stopping.send(());
        });
        let mut server = tokio::spawn(server);
        // In-flight requests get `shutdown_timeout` to finish once the
        // signal came; the server task ends sooner when they do, and is
        // aborted (dropping what is left) when they do not.
        let _ = stopped.await;
        // WebSockets are upgraded out of the server's connection tracking:
        // they are told to close with 1001, and waited for beside requests.
        hub.stop();
        let deadline = tokio::time::Instant::now() + shutdown_timeout;
        let outcome = tokio::time::timeout_at(deadline, &mut server).await;
        if outcome.is_err() {
            server.abort();
        }
        while hub
            .counters
            .connections
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Before the pool closes under it.
        drop(housekeeping);
        markets.close();
        let written = match writer.await {
            Ok(()) => Ok(()),
            Err(_) => Err(StartupError::WriterPanicked),
        };
        store.close().await;
        written?;
        if markets.writer_replaced() {
            return Err(StartupError::Replaced);
        }
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(join)) => Err(StartupError::ServerTask(join)),
            Err(_) => {
                tracing::warn!("shutdown timed out with requests still in flight");
                Ok(())
            }
        }
    }
}

/// The token secret: configured, or generated once and kept beside the
/// embedded database.
fn jwt_secret(config: &ServeConfig) -> Result<Vec<u8>, StartupError> {
    if let Some(secret) = &config.jwt_secret {
        // HS256 asks for a key of 256 bits at least (RFC 7518, 3.2).
        if secret.len() < 32 {
            return Err(StartupError::Config(
                "BIDASK_JWT_SECRET must be at least 32 bytes".to_owned(),
            ));
        }
        // A placeholder (spaces, `xxxx…`) of the right length is no secret;
        // whoever guesses it can sign tokens for any user, admins included.
        if secret
            .chars()
            .all(|character| secret.starts_with(character))
        {
            return Err(StartupError::Config(
                "BIDASK_JWT_SECRET is one character repeated: use a random value, such as the \
                 output of `openssl rand -hex 32`"
                    .to_owned(),
            ));
        }
        return Ok(secret.as_bytes().to_vec());
    }
    let Some(path) = secret_path(&config.database.database_url) else {
        tracing::warn!(
            "BIDASK_JWT_SECRET is not set: using a random secret for this run; tokens will not \
             survive a restart"
        );
        return random_secret();
    };
    // Made only where there is none: any other secret file, unreadable,
    // short or not text, is the secret every token was signed with, and
    // replacing it would sign everyone out for good.
    match std::fs::read(&path) {
        Ok(kept) => {
            let secret = kept.trim_ascii();
            if secret.len() < 32 {
                return Err(StartupError::Config(format!(
                    "the kept token secret {} holds {} bytes, and at least 32 are needed: \
                     restore it, or delete it to have a new one made (which signs everyone out)",
                    path.display(),
                    secret.len()
                )));
            }
            Ok(secret.to_vec())
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let secret = random_secret()?;
            // Whole under its name or not there, so that a crash cannot
            // leave an empty secret behind.
            bidask_store::backup::write_new(&path, &secret).map_err(|error| {
                StartupError::Config(format!("cannot write {}: {error}", path.display()))
            })?;
            tracing::warn!(
                path = %path.display(),
                "BIDASK_JWT_SECRET is not set: generated a secret and kept it beside the database"
            );
            Ok(secret)
        }
        Err(error) => Err(StartupError::Config(format!(
            "cannot read the kept token secret {}: {error}",
            path.display()
        ))),
    }
}

/// `bidask.db` → `bidask.db.jwt-secret`; none for PostgreSQL or memory.
fn secret_path(url: &str) -> Option<PathBuf> {
    bidask_store::sqlite_file(url).map(|path| bidask_store::beside(&path, "jwt-secret"))
}

fn random_secret() -> Result<Vec<u8>, StartupError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|error| StartupError::Config(format!("no randomness for a secret: {error}")))?;
    Ok(bytes
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<String>()
        .into_bytes())
}

/// The admin account the environment names, if any: read before the
/// database is touched, so that a setting's mistake stops the server
/// before it makes a file or a secret.
fn admin_account(config: &ServeConfig) -> Result<Option<(Username, Password)>, StartupError> {
    let (username, password) = match (&config.admin_username, &config.admin_password) {
        (Some(username), Some(password)) => (username, password),
        (None, None) => return Ok(None),
        // Half of an account is a typo, not a wish for none.
        (Some(_), None) => {
            return Err(StartupError::Config(
                "BIDASK_ADMIN_USERNAME is set without BIDASK_ADMIN_PASSWORD".to_owned(),
            ));
        }
        (None, Some(_)) => {
            return Err(StartupError::Config(
                "BIDASK_ADMIN_PASSWORD is set without BIDASK_ADMIN_USERNAME".to_owned(),
            ));
        }
    };
    let username = Username::parse(username)
        .map_err(|error| StartupError::Config(format!("BIDASK_ADMIN_USERNAME: {error}")))?;
    let password = Password::parse(password)
        .map_err(|error| StartupError::Config(format!("BIDASK_ADMIN_PASSWORD: {error}")))?;
    Ok(Some((username, password)))
}

async fn ensure_admin(
    store: &Store,
    account: Option<(Username, Password)>,
) -> Result<(), StartupError> {
    let Some((username, password)) = account else {
        return Ok(());
    };
    let existing = store.user_by_name(username.as_str()).await?;
    let admin = match existing {
        Some(user)
            if user.role == Role::Admin.as_str()
                && password::verify(
                    password.clone(),
                    user.password_hash.clone(),
                    password::Caller::Anyone,
                )
                .await
                .map_err(|error| StartupError::Config(error.to_string()))? =>
        {
            user.id
        }
        // A new password, or a new admin: the tokens issued before, under
        // the old password or to the trader who had the name, stop working.
        existing => {
            let password_hash = password::hash(password)
                .await
                .map_err(|error| StartupError::Config(error.to_string()))?;
            let token_key = new_token_key()?;
            match existing {
                Some(user) => {
                    if user.role != Role::Admin.as_str() {
                        tracing::warn!(
                            %username,
                            id = user.id,
                            "BIDASK_ADMIN_USERNAME names a trader's account: it is now the admin, \
                             with the configured password, and the tokens issued to it before are refused"
                        );
                    }
                    if !store.make_admin(user.id, &password_hash, token_key).await? {
                        return Err(
                            StoreError::Corrupt("the admin's account vanished".to_owned()).into(),
                        );
                    }
                    user.id
                }
                None => {
                    store
                        .create_user(&NewUser {
                            username: username.to_string(),
                            password_hash,
                            role: Role::Admin.as_str().to_owned(),
                            created_at: now_micros(),
                            token_key,
                        })
                        .await?
                        .id
                }
            }
        }
    };
    // The environment names the admin: an account that was the admin
    // under an earlier name keeps its password as a trader, and its
    // tokens, which say `admin`, stop working.
    for (id, former) in store.other_admins(admin).await? {
        if store.demote_admin(id, new_token_key()?).await? {
            tracing::warn!(
                username = %former,
                id,
                "BIDASK_ADMIN_USERNAME names another account: this one, an admin before, is now \
                 a trader, and its tokens are refused"
            );
        }
    }
    tracing::info!(%username, "admin account ready");
    Ok(())
}

fn new_token_key() -> Result<i64, StartupError> {
    token::new_key().map_err(|error| StartupError::Config(format!("a token key: {error}")))
}
