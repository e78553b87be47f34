//! The group commit against both databases, below the server: what a
//! batch writes, and what it refuses to write.

use bidask_store::{
    Batch, FeedEventRecord, MatchRecord, NewUser, OrderRecord, ProductRecord, PrunedFeed, Store,
    StoreOptions,
};
use bidask_tests::{Backend, TestDatabase, on_both_backends};

mod upgrade;

on_both_backends!(
    orders_are_inserted_then_replaced,
    a_refused_batch_writes_nothing,
    an_idempotency_key_is_never_replaced,
    pruning_the_feed_keeps_each_channels_newest_events,
    pruning_idempotency_keys_forgets_the_old_ones_only,
    the_schema_refuses_rows_the_domain_forbids,
);

/// A migrated store with one user (id 1) and one product (id 1, one size).
async fn store_with_a_market(backend: Backend) -> (Store, TestDatabase) {
    let database = TestDatabase::new(backend).await;
    let store = Store::connect_lazy(&database.url, &StoreOptions::default()).expect("a store");
    store.migrate().await.expect("migrations");
    let user = store
        .create_user(&NewUser {
            username: "ann".to_owned(),
            password_hash: "not-a-real-hash".to_owned(),
            role: "trader".to_owned(),
            created_at: 1,
            token_key: 1,
        })
        .await
        .expect("a user");
    assert_eq!(user.id, 1);
    let mut committer = store.committer();
    committer
        .commit(&Batch {
            products: vec![ProductRecord {
                id: 1,
                sku: "AJ1-CHI".to_owned(),
                name: "Air Jordan 1 Chicago".to_owned(),
                brand: "Jordan".to_owned(),
                tick_units: 1,
                scale: 2,
                sizes: vec!["10".to_owned()],
                created_at: 1,
            }],
            ..Batch::default()
        })
        .await
        .expect("a product");
    (store, database)
}

fn bid(id: i64, price_ticks: i64) -> OrderRecord {
    OrderRecord {
        id,
        user_id: 1,
        product_id: 1,
        market: 0,
        side: "bid".to_owned(),
        price_ticks,
        quantity: 2,
        remaining_quantity: 2,
        status: "open".to_owned(),
        time_in_force: "gtc".to_owned(),
        cancel_reason: None,
        expires_at: 1_000_000,
        created_at: 10,
        updated_at: 10,
        priority: id,
    }
}

async fn orders_are_inserted_then_replaced(backend: Backend) {
    let (store, _database) = store_with_a_market(backend).await;
    let mut committer = store.committer();
    committer
        .commit(&Batch {
            orders: vec![bid(1, 19_500), bid(2, 19_600)],
            ..Batch::default()
        })
        .await
        .expect("two new orders");
    let cancelled = OrderRecord {
        status: "cancelled".to_owned(),
        cancel_reason: Some("requested".to_owned()),
        updated_at: 20,
        ..bid(1, 19_500)
    };
    committer
        .commit(&Batch {
            orders: vec![bid(3, 19_700), cancelled.clone()],
            ..Batch::default()
        })
        .await
        .expect("a new order and a cancel");
    assert_eq!(store.order(1).await.expect("a read"), Some(cancelled));
    let open: Vec<i64> = store
        .open_orders(1)
        .await
        .expect("a read")
        .iter()
        .map(|order| order.id)
        .collect();
    assert_eq!(open, vec![2, 3]);
}

async fn a_refused_batch_writes_nothing(backend: Backend) {
    let (store, database) = store_with_a_market(backend).await;
    let mut committer = store.committer();
    // A trade between orders that do not exist breaks two foreign keys.
    let refused = committer
        .commit(&Batch {
            orders: vec![bid(1, 19_500)],
            matches: vec![MatchRecord {
                id: 1,
                product_id: 1,
                market: 0,
                price_ticks: 19_500,
                quantity: 1,
                bid_order_id: 1,
                ask_order_id: 1_000,
                buyer_id: 1,
                seller_id: 2,
                taker_side: "bid".to_owned(),
                created_at: 10,
            }],
            ..Batch::default()
        })
        .await
        .expect_err("a match of orders that are not there");
    assert!(
        !refused.is_unavailable(),
        "a refusal, not an outage: {refused}"
    );
    assert_eq!(
        store.order(1).await.expect("a read"),
        None,
        "nothing of the batch landed"
    );
    // The committer still holds the writer's lock: a server waiting for
    // it must not get it from a refusal.
    if backend == Backend::Postgres {
        let options = StoreOptions {
            writer_lock_wait: std::time::Duration::from_millis(300),
            ..StoreOptions::default()
        };
        let other = Store::connect_lazy(&database.url, &options).expect("a store");
        let taken = other.committer().fence().await;
        assert!(
            matches!(taken, Err(bidask_store::StoreError::WriterElsewhere)),
            "the lock was let go after a refusal: {taken:?}"
        );
    }
    // A refusal is not an outage: the committer goes on with the next batch.
    committer
        .commit(&Batch {
            orders: vec![bid(1, 19_500)],
            ..Batch::default()
        })
        .await
        .expect("the next batch");
    assert_eq!(
        store.order(1).await.expect("a read").map(|order| order.id),
        Some(1)
    );
}

/// One writer per database: the connection that commits holds
/// PostgreSQL's writer lock for its life; a server starting meanwhile
/// waits for it (a dead server's last statement may still commit) and
/// gives up past its wait; once the holder is gone it goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_committing_connection_fences_out_other_writers() {
    use std::time::{Duration, Instant};

    let database = TestDatabase::new(Backend::Postgres).await;
    let options = StoreOptions {
        writer_lock_wait: Duration::from_millis(300),
        ..StoreOptions::default()
    };
    let first = Store::connect_lazy(&database.url, &options).expect("a store");
    first.migrate().await.expect("migrations");
    let mut committer = first.committer();
    committer.fence().await.expect("the lock");

    let second = Store::connect_lazy(&database.url, &options).expect("a store");
    let mut other = second.committer();
    let started = Instant::now();
    let refused = other.fence().await;
    assert!(
        matches!(refused, Err(bidask_store::StoreError::WriterElsewhere)),
        "{refused:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(300), "it waited");
    // A commit on a fresh connection takes the lock first, too.
    assert!(matches!(
        other
            .commit(&Batch {
                orders: vec![bid(1, 100)],
                ..Batch::default()
            })
            .await,
        Err(bidask_store::StoreError::WriterElsewhere)
    ));

    committer.close().await;
    other
        .fence()
        .await
        .expect("the holder is gone, the lock is free");
}

/// The writer's backend holds the writer's lock for as long as it thinks
/// its client is there. A client whose host vanished without closing the
/// connection must be found gone before the next server's wait for the
/// lock (30 s) is over, not after the kernel's default keepalive (two
/// hours): the backend's socket must have its keepalive timer set to go
/// off within 10 s of quiet. Read from the kernel's table of TCP sockets,
/// since a session's settings cannot be seen from another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writers_backend_probes_a_quiet_client_within_10_s() {
    use std::time::{Duration, Instant};

    let database = TestDatabase::new(Backend::Postgres).await;
    let store = Store::connect_lazy(&database.url, &StoreOptions::default()).expect("a store");
    store.migrate().await.expect("migrations");
    let mut committer = store.committer();
    committer.fence().await.expect("the lock");

    let (client_port,): (i32,) = sqlx::query_as(
        "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted \
         AND ((l.classid::bigint << 32) | l.objid::bigint) = $1 \
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .bind(bidask_store::WRITER_LOCK)
    .fetch_one(&mut database.connect().await)
    .await
    .expect("the writer's backend, over TCP");
    let client_port = u16::try_from(client_port).unwrap_or_else(|_| {
        panic!("the writer connects over a Unix socket; this test needs PostgreSQL over TCP")
    });

    // The backend's end: its remote port is the writer's. Columns:
    // sl local remote st tx:rx tr:when ...; `tr` 2 is the keepalive
    // timer, `when` is in clock ticks (100 a second) until it fires. Until
    // the writer's delayed acknowledgement of the last answer comes, the
    // retransmission timer (1) shows instead: read again for up to 5 s.
    let backend_timer = || {
        ["/proc/net/tcp", "/proc/net/tcp6"]
            .into_iter()
            .flat_map(|table| {
                std::fs::read_to_string(table)
                    .unwrap_or_default()
                    .lines()
                    .skip(1)
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .find_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let remote_port = fields
                    .get(2)
                    .and_then(|remote| remote.rsplit_once(':'))
                    .and_then(|(_, port)| u16::from_str_radix(port, 16).ok());
                let established = fields.get(3) == Some(&"01");
                (established && remote_port == Some(client_port))
                    .then(|| fields.get(5).map(|timer| (*timer).to_owned()))
                    .flatten()
            })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let timer = loop {
        let timer = backend_timer().unwrap_or_else(|| {
            panic!(
                "the backend's socket is not in this machine's /proc/net/tcp: this test needs \
                 the PostgreSQL server on this machine, not behind a proxy"
            )
        });
        if timer.starts_with("02:") || Instant::now() >= deadline {
            break timer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let ticks = timer
        .strip_prefix("02:")
        .and_then(|when| u64::from_str_radix(when, 16).ok());
    assert!(
        ticks.is_some_and(|ticks| ticks <= 10 * 100),
        "the backend's socket timer is {timer}, not a keepalive due within 10 s"
    );
    committer.close().await;
}

/// A key is stored once: a second batch with the same user and key is
/// refused whole (its order is not written), so that one key can never
/// stand for two orders.
async fn an_idempotency_key_is_never_replaced(backend: Backend) {
    let (store, _database) = store_with_a_market(backend).await;
    let key = |response: &str| bidask_store::IdempotencyRecord {
        user_id: 1,
        key: "retry-me".to_owned(),
        request_hash: "sha256:same".to_owned(),
        status: 201,
        response: response.to_owned(),
        created_at: 2,
    };
    let mut committer = store.committer();
    committer
        .commit(&Batch {
            orders: vec![bid(1, 100)],
            idempotency: vec![key("first")],
            ..Batch::default()
        })
        .await
        .expect("the first use");
    let refused = committer
        .commit(&Batch {
            orders: vec![bid(2, 101)],
            idempotency: vec![key("second")],
            ..Batch::default()
        })
        .await;
    assert!(
        matches!(refused, Err(bidask_store::StoreError::Conflict { .. })),
        "{refused:?}"
    );
    assert_eq!(
        store
            .idempotency(1, "retry-me")
            .await
            .expect("a read")
            .map(|stored| stored.response),
        Some("first".to_owned())
    );
    let open = store.open_orders(1).await.expect("a read");
    assert_eq!(
        open.iter().map(|order| order.id).collect::<Vec<_>>(),
        vec![1]
    );
}

/// Old events go, a channel's newest stays whatever its age (restarts
/// number on from it), and what is left of each channel has no gap.
async fn pruning_the_feed_keeps_each_channels_newest_events(backend: Backend) {
    let (store, _database) = store_with_a_market(backend).await;
    let event = |channel: &str, seq: i64, created_at: i64| FeedEventRecord {
        channel: channel.to_owned(),
        seq,
        event_type: "BID_UPDATED".to_owned(),
        payload: format!("{{\"seq\":{seq}}}"),
        created_at,
    };
    // product:1 has 4,500 old events (more than one delete's worth) and
    // ten recent ones; user:1 only old ones; products only recent ones.
    let mut events: Vec<FeedEventRecord> = (1..=4_500)
        .map(|seq| event("product:1", seq, seq))
        .collect();
    events.extend((4_501..=4_510).map(|seq| event("product:1", seq, 10_000)));
    events.extend((1..=3).map(|seq| event("user:1", seq, 100 + seq)));
    events.extend((1..=2).map(|seq| event("products", seq, 20_000)));
    store
        .committer()
        .commit(&Batch {
            events,
            ..Batch::default()
        })
        .await
        .expect("the events");

    let pruned = store.prune_feed(5_000).await.expect("a pass");
    assert_eq!(
        pruned,
        PrunedFeed {
            channels: 2,
            events: 4_502
        }
    );
    let seqs = |channel: &'static str| {
        let store = store.clone();
        async move {
            store
                .feed_events(channel, 0, 100)
                .await
                .expect("a read")
                .into_iter()
                .map(|(seq, _)| seq)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(seqs("product:1").await, (4_501..=4_510).collect::<Vec<_>>());
    assert_eq!(seqs("user:1").await, vec![3]);
    assert_eq!(seqs("products").await, vec![1, 2]);
    let mut last = store.last_seqs().await.expect("a read");
    last.sort();
    assert_eq!(
        last,
        vec![
            ("product:1".to_owned(), 4_510),
            ("products".to_owned(), 2),
            ("user:1".to_owned(), 3)
        ]
    );
    assert_eq!(
        store.prune_feed(5_000).await.expect("a second pass"),
        PrunedFeed::default(),
        "a second pass finds nothing more to remove"
    );
}

/// Keys older than the cutoff go, over more than one chunk's worth (the
/// pass goes on until a chunk comes back short); younger ones stay.
async fn pruning_idempotency_keys_forgets_the_old_ones_only(backend: Backend) {
    let (store, _database) = store_with_a_market(backend).await;
    let key = |index: i64, created_at: i64| bidask_store::IdempotencyRecord {
        user_id: 1,
        key: format!("key-{index}"),
        request_hash: "sha256:hash".to_owned(),
        status: 201,
        response: "{}".to_owned(),
        created_at,
    };
    let mut keys: Vec<_> = (1..=4_500).map(|index| key(index, index)).collect();
    keys.extend((4_501..=4_510).map(|index| key(index, 10_000)));
    store
        .committer()
        .commit(&Batch {
            idempotency: keys,
            ..Batch::default()
        })
        .await
        .expect("the keys");

    assert_eq!(store.prune_idempotency(5_000).await.expect("a pass"), 4_500);
    for index in [1, 2_000, 2_001, 4_500] {
        let kept = store
            .idempotency(1, &format!("key-{index}"))
            .await
            .expect("a read");
        assert!(kept.is_none(), "key-{index} is older than the cutoff");
    }
    for index in 4_501..=4_510 {
        let kept = store
            .idempotency(1, &format!("key-{index}"))
            .await
            .expect("a read");
        assert!(kept.is_some(), "key-{index} is younger than the cutoff");
    }
    assert_eq!(
        store.prune_idempotency(5_000).await.expect("a second pass"),
        0
    );
}

/// The lock ends with its connection, and a committer cannot tell from
/// the lock alone whether another writer held it meanwhile: the
/// generation it claimed tells. With its own connection cut and nobody
/// else claiming, it takes the lock back and goes on; once another
/// committer has claimed the database it refuses, at once while the other
/// holds the lock and still after it let go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committer_refuses_once_another_claimed_the_database() {
    use std::time::{Duration, Instant};

    use bidask_store::StoreError;

    let (store, database) = store_with_a_market(Backend::Postgres).await;
    let mut first = store.committer();
    first.fence().await.expect("the lock");
    first.claim().await.expect("a claim");
    let one = |id| Batch {
        orders: vec![bid(id, 100)],
        ..Batch::default()
    };

    database.terminate_writer().await;
    commit_past_a_cut(&mut first, &one(1))
        .await
        .expect("its own lock back, nobody else having claimed");

    database.terminate_writer().await;
    let mut second = store.committer();
    second
        .fence()
        .await
        .expect("the lock, once the cut backend is gone");
    second.claim().await.expect("a claim");
    let started = Instant::now();
    let refused = commit_past_a_cut(&mut first, &one(2)).await;
    assert!(
        matches!(refused, Err(StoreError::WriterReplaced)),
        "{refused:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it did not wait out the other's lock"
    );
    second.close().await;
    let refused = first.commit(&one(2)).await;
    assert!(
        matches!(refused, Err(StoreError::WriterReplaced)),
        "{refused:?}"
    );
    assert_eq!(
        store.order(2).await.expect("a read").map(|order| order.id),
        None
    );
}

/// Commits `batch`, again after each failure the cut connection causes
/// (at most three tries), until it lands or is refused for good.
async fn commit_past_a_cut(
    committer: &mut bidask_store::Committer,
    batch: &Batch,
) -> Result<(), bidask_store::StoreError> {
    let mut outcome = committer.commit(batch).await;
    for _ in 0..2 {
        match &outcome {
            Ok(()) | Err(bidask_store::StoreError::WriterReplaced) => break,
            Err(_) => outcome = committer.commit(batch).await,
        }
    }
    outcome
}

/// The schema refuses, on both backends, the rows the domain forbids,
/// whatever a bug above it might send: each statement below changes one
/// thing of a row the schema takes, and is refused.
async fn the_schema_refuses_rows_the_domain_forbids(backend: Backend) {
    let (store, database) = store_with_a_market(backend).await;
    let seller = store
        .create_user(&NewUser {
            username: "bob".to_owned(),
            password_hash: "not-a-real-hash".to_owned(),
            role: "trader".to_owned(),
            created_at: 1,
            token_key: 1,
        })
        .await
        .expect("a second user");
    let mut connection = database.connect().await;
    // Each row takes its own place in the queue, so that none is refused
    // for taking another's place, but the one row about that.
    let place = std::cell::Cell::new(100);
    let order_at = |place: i64, id: &str, price: &str, state: &str| {
        format!(
            "INSERT INTO orders (id, user_id, product_id, market, side, price_ticks, quantity, \
             remaining_quantity, status, time_in_force, cancel_reason, expires_at, created_at, \
             updated_at, priority) VALUES ({id}, 1, 1, 0, 'bid', {price}, {state}, NULL, 100, \
             1, 1, {place})"
        )
    };
    let order =
        |id: &str, price: &str, quantity: &str, remaining: &str, status: &str, tif: &str| {
            place.set(place.get() + 1);
            order_at(
                place.get(),
                id,
                price,
                &format!("{quantity}, {remaining}, '{status}', '{tif}'"),
            )
        };
    let trade = |id: &str, price: &str, quantity: &str| {
        format!(
            "INSERT INTO matches (id, product_id, market, price_ticks, quantity, bid_order_id, \
             ask_order_id, buyer_id, seller_id, taker_side, created_at) \
             VALUES ({id}, 1, 0, {price}, {quantity}, 1, 2, 1, {}, 'bid', 1)",
            seller.id
        )
    };
    // The rows the schema takes, written as the server writes them: a bid
    // and an ask, each partly filled by one trade.
    let partly = |order: OrderRecord| OrderRecord {
        quantity: 5,
        remaining_quantity: 4,
        status: "partially_filled".to_owned(),
        ..order
    };
    let ask = OrderRecord {
        user_id: seller.id,
        side: "ask".to_owned(),
        ..bid(2, 100)
    };
    store
        .committer()
        .commit(&Batch {
            orders: vec![partly(bid(1, 100)), partly(ask)],
            matches: vec![MatchRecord {
                id: 1,
                product_id: 1,
                market: 0,
                price_ticks: 100,
                quantity: 1,
                bid_order_id: 1,
                ask_order_id: 2,
                buyer_id: 1,
                seller_id: seller.id,
                taker_side: "bid".to_owned(),
                created_at: 10,
            }],
            ..Batch::default()
        })
        .await
        .expect("the rows the schema takes");
    // The same statements write rows the schema takes when nothing is wrong
    // with them, a finished order at a resting order's place among them:
    // only resting orders hold a place in a queue.
    for statement in [
        order("30", "100", "5", "5", "open", "gtc"),
        order_at(1, "31", "100", "5, 0, 'filled', 'gtc'"),
        trade("32", "100", "1"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut connection)
            .await
            .expect("a row the schema takes");
    }
    let mut refused = vec![
        ("a price of 0", order("3", "0", "5", "5", "open", "gtc")),
        (
            "a price as text",
            order("4", "'abc'", "5", "5", "open", "gtc"),
        ),
        (
            "a quantity of 0",
            order("5", "100", "0", "0", "filled", "gtc"),
        ),
        (
            "more left than ordered",
            order("6", "100", "5", "6", "open", "gtc"),
        ),
        (
            "an unknown status",
            order("7", "100", "5", "5", "resting", "gtc"),
        ),
        (
            "open, part filled",
            order("8", "100", "5", "3", "open", "gtc"),
        ),
        (
            "partially filled, none filled",
            order("9", "100", "5", "5", "partially_filled", "gtc"),
        ),
        (
            "filled, some left",
            order("10", "100", "5", "1", "filled", "gtc"),
        ),
        (
            "an open immediate-or-cancel",
            order("11", "100", "5", "5", "open", "ioc"),
        ),
        (
            "a resting fill-or-kill",
            order("12", "100", "5", "3", "partially_filled", "fok"),
        ),
        (
            "an order with no id",
            order("NULL", "100", "5", "5", "open", "gtc"),
        ),
        (
            "a resting order at the place of another in the queue",
            order_at(1, "19", "100", "5, 5, 'open', 'gtc'"),
        ),
        (
            "an order that became partially filled with none filled",
            "UPDATE orders SET remaining_quantity = 5 WHERE id = 1".to_owned(),
        ),
        (
            "an order that became open, part filled",
            "UPDATE orders SET status = 'open' WHERE id = 1".to_owned(),
        ),
        ("a trade of 0", trade("13", "100", "0")),
        ("a trade at 0", trade("14", "0", "1")),
        ("a trade with no id", trade("NULL", "100", "1")),
    ];
    // PostgreSQL stores 1.5 in an integer column rounded, as an integer;
    // SQLite stored 1.5 itself, which recovery cannot read.
    if backend == Backend::Sqlite {
        refused.extend([
            (
                "a price of 1.5 ticks",
                order("15", "1.5", "5", "5", "open", "gtc"),
            ),
            (
                "a quantity of 2.5",
                order("16", "100", "2.5", "2.5", "open", "gtc"),
            ),
            (
                "an order id of 3.5",
                order("3.5", "100", "5", "5", "open", "gtc"),
            ),
            ("a trade at 1.5 ticks", trade("17", "1.5", "1")),
            ("a trade of 0.5", trade("18", "100", "0.5")),
        ]);
    }
    let mut taken = Vec::new();
    for (what, statement) in &refused {
        if sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
            .execute(&mut connection)
            .await
            .is_ok()
        {
            taken.push(*what);
        }
    }
    assert!(taken.is_empty(), "{backend:?} took {taken:?}");
    let (orders, matches): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM matches)")
            .fetch_one(&mut connection)
            .await
            .expect("the counts");
    assert_eq!((orders, matches), (4, 2));
}
