-- Scratch tables shaped like `orders` and `feed_events`, for pgbench.
CREATE TABLE pgbench_orders (
    id BIGSERIAL PRIMARY KEY, user_id BIGINT NOT NULL, product_id BIGINT NOT NULL,
    market BIGINT NOT NULL, side TEXT NOT NULL, price_ticks BIGINT NOT NULL CHECK (price_ticks > 0),
    quantity BIGINT NOT NULL, remaining_quantity BIGINT NOT NULL, status TEXT NOT NULL,
    time_in_force TEXT NOT NULL, cancel_reason TEXT, expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, priority BIGINT NOT NULL);
CREATE TABLE pgbench_events (
    seq BIGSERIAL PRIMARY KEY, channel TEXT NOT NULL, event_type TEXT NOT NULL,
    payload TEXT NOT NULL, created_at BIGINT NOT NULL);
