-- bidask schema, SQLite (the embedded default): the same tables as the
-- PostgreSQL schema. Times are microseconds since the Unix epoch
-- (UTC) and prices are integer ticks of the product's tick size: the
-- matching engine's representation, identical on both backends. The
-- constraints restate the rules of the API contract, so that a bug above
-- cannot store what the contract forbids.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT   NOT NULL UNIQUE CHECK (length(username) BETWEEN 3 AND 32),
    password_hash TEXT   NOT NULL,
    role          TEXT   NOT NULL CHECK (role IN ('trader', 'admin')),
    created_at    BIGINT NOT NULL
);

-- A product's tick size is tick_units * 10^-scale; prices are shown with
-- `scale` decimals.
CREATE TABLE products (
    id         BIGINT PRIMARY KEY,
    sku        TEXT   NOT NULL UNIQUE CHECK (length(sku) BETWEEN 1 AND 64),
    name       TEXT   NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    brand      TEXT   NOT NULL CHECK (length(brand) BETWEEN 1 AND 100),
    tick_units BIGINT NOT NULL CHECK (tick_units > 0),
    scale      BIGINT  NOT NULL CHECK (scale BETWEEN 0 AND 8),
    created_at BIGINT NOT NULL
);

-- One market per size; `market` is the engine's market number.
CREATE TABLE product_sizes (
    product_id BIGINT  NOT NULL REFERENCES products (id),
    market     BIGINT  NOT NULL CHECK (market BETWEEN 0 AND 65535),
    size       TEXT    NOT NULL CHECK (length(size) BETWEEN 1 AND 16),
    PRIMARY KEY (product_id, market),
    UNIQUE (product_id, size)
);

-- `priority` orders a book's queue: it is taken when an order is placed and
-- again when an amendment sends it to the back, so open orders sorted by it
-- rebuild every level's queue exactly.
CREATE TABLE orders (
    id                 BIGINT  PRIMARY KEY,
    user_id            BIGINT  NOT NULL REFERENCES users (id),
    product_id         BIGINT  NOT NULL,
    market             BIGINT  NOT NULL,
    side               TEXT    NOT NULL CHECK (side IN ('bid', 'ask')),
    price_ticks        BIGINT  NOT NULL CHECK (price_ticks > 0),
    quantity           BIGINT  NOT NULL CHECK (quantity BETWEEN 1 AND 10000),
    remaining_quantity BIGINT  NOT NULL CHECK (remaining_quantity BETWEEN 0 AND quantity),
    status             TEXT    NOT NULL CHECK (status IN ('open', 'partially_filled', 'filled', 'cancelled', 'expired')),
    time_in_force      TEXT    NOT NULL CHECK (time_in_force IN ('gtc', 'ioc', 'fok')),
    cancel_reason      TEXT    CHECK (cancel_reason IN ('requested', 'self_trade', 'immediate_or_cancel', 'fill_or_kill')),
    expires_at         BIGINT  NOT NULL,
    created_at         BIGINT  NOT NULL,
    updated_at         BIGINT  NOT NULL,
    priority           BIGINT  NOT NULL,
    FOREIGN KEY (product_id, market) REFERENCES product_sizes (product_id, market),
    CHECK ((status = 'cancelled') = (cancel_reason IS NOT NULL)),
    -- remaining_quantity is what was never filled: 0 only when filled,
    -- and what was left when an order was cancelled or expired.
    CHECK ((status = 'filled') = (remaining_quantity = 0)),
    CHECK (expires_at > created_at)
);
CREATE INDEX orders_open ON orders (product_id, priority)
    WHERE status IN ('open', 'partially_filled');
CREATE INDEX orders_by_user ON orders (user_id, id);

CREATE TABLE matches (
    id           BIGINT  PRIMARY KEY,
    product_id   BIGINT  NOT NULL,
    market       BIGINT  NOT NULL,
    price_ticks  BIGINT  NOT NULL CHECK (price_ticks > 0),
    quantity     BIGINT  NOT NULL CHECK (quantity BETWEEN 1 AND 10000),
    bid_order_id BIGINT  NOT NULL REFERENCES orders (id),
    ask_order_id BIGINT  NOT NULL REFERENCES orders (id),
    buyer_id     BIGINT  NOT NULL REFERENCES users (id),
    seller_id    BIGINT  NOT NULL REFERENCES users (id),
    taker_side   TEXT    NOT NULL CHECK (taker_side IN ('bid', 'ask')),
    created_at   BIGINT  NOT NULL,
    FOREIGN KEY (product_id, market) REFERENCES product_sizes (product_id, market),
    CHECK (buyer_id <> seller_id)
);
CREATE INDEX matches_by_market ON matches (product_id, market, id);
CREATE INDEX matches_by_buyer ON matches (buyer_id, id);
CREATE INDEX matches_by_seller ON matches (seller_id, id);

-- The feed as it was published: one row per event, the exact JSON sent.
CREATE TABLE feed_events (
    channel    TEXT   NOT NULL,
    seq        BIGINT NOT NULL CHECK (seq > 0),
    event_type TEXT   NOT NULL,
    payload    TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (channel, seq)
);

CREATE TABLE notifications (
    id         BIGINT PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id),
    match_id   BIGINT NOT NULL REFERENCES matches (id),
    order_id   BIGINT NOT NULL REFERENCES orders (id),
    payload    TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX notifications_by_user ON notifications (user_id, id);

-- The first response to an `Idempotency-Key`, replayed for 24 hours.
CREATE TABLE idempotency_keys (
    user_id      BIGINT  NOT NULL REFERENCES users (id),
    key          TEXT    NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash TEXT    NOT NULL,
    status       BIGINT  NOT NULL,
    response     TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    PRIMARY KEY (user_id, key)
);
