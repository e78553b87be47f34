//! What can stop a load run. These are failures around the measured phase
//! (a bad setting, an unreachable server, an empty catalog, a user that
//! cannot sign in); a single request failing inside the measured phase is
//! a figure in the report, never one of these.

/// Why a run could not start or could not finish its bookkeeping.
#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    /// The `--url` setting is not one the generator can talk to.
    #[error("invalid --url {url:?}: {reason}")]
    Url {
        /// The setting as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A setup request got no answer at all.
    #[error(
        "{step}: no answer from the server at {url} ({source}); is `bidask serve` running there?"
    )]
    Unreachable {
        /// The setup step, for the message (`"register lg…-3"`).
        step: String,
        /// The base URL, so the message says where the generator looked.
        url: String,
        /// What the transport said.
        #[source]
        source: crate::http::TransportError,
    },

    /// A setup request was answered with a status the step cannot go on from.
    #[error("{step}: the server answered {status}: {message}")]
    Rejected {
        /// The setup step, for the message.
        step: String,
        /// The HTTP status code.
        status: u16,
        /// The contract's `error.message`, or the start of the body.
        message: String,
    },

    /// A setup answer was not the JSON the contract describes.
    #[error("{step}: the server's answer is not the expected JSON: {source}")]
    Decode {
        /// The setup step, for the message.
        step: String,
        /// Where the JSON stopped making sense.
        #[source]
        source: serde_json::Error,
    },

    /// There is nothing to trade on.
    #[error(
        "the catalog at {url} has no product with a size to trade on; start the server with `bidask serve --demo` (or BIDASK_DEMO=1), or create products first"
    )]
    EmptyCatalog {
        /// The base URL, so the message says which server is empty.
        url: String,
    },

    /// `--product` names no product with a size in the catalog.
    #[error("the catalog at {url} has no product {product} with a size to bid on")]
    UnknownProduct {
        /// The product asked for.
        product: i64,
        /// The base URL, so the message says which server.
        url: String,
    },

    /// This process may not open as many files as the run needs sockets.
    #[error(
        "{needed} open files are needed for the clients but the limit is {soft}; raise it with `ulimit -n {hard}` (the hard limit) or run fewer clients per process"
    )]
    OpenFiles {
        /// Sockets of the run plus a margin.
        needed: u64,
        /// The soft limit now.
        soft: u64,
        /// The hard limit it can be raised to.
        hard: u64,
    },

    /// `/proc` could not be read for the process given as `--server-pid`.
    #[error("cannot read /proc/{pid} (is --server-pid right?): {source}")]
    ServerProcess {
        /// The pid given.
        pid: u32,
        /// What reading said.
        #[source]
        source: std::io::Error,
    },

    /// Not one feed client got subscribed.
    #[error("no WebSocket client could subscribe at {url} ({failures}); is the server running?")]
    NoSubscriber {
        /// The feed URL.
        url: String,
        /// The setup failures by kind, for the message.
        failures: String,
    },

    /// Histogram bounds were refused; the bounds are constants, so this
    /// means a bug in the generator.
    #[error("could not create a latency histogram: {0}")]
    Histogram(#[from] hdrhistogram::CreationError),

    /// Per-trader histograms could not be merged; as above, a bug.
    #[error("could not merge latency histograms: {0}")]
    Merge(#[from] hdrhistogram::AdditionError),

    /// A trader task panicked or was cancelled.
    #[error("a trader task stopped abnormally: {0}")]
    Trader(#[from] tokio::task::JoinError),

    /// A feed client task of the `fanout` scenario panicked.
    #[error("a feed client task stopped abnormally: {0}")]
    FeedClient(#[source] tokio::task::JoinError),

    /// The report could not be written as JSON.
    #[error("could not encode the report as JSON: {0}")]
    Encode(#[source] serde_json::Error),
}
