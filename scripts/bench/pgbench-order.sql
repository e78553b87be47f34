-- One order as a transaction of its own: the order row and one feed event,
-- committed (fsync) before the next. This is PostgreSQL's ceiling for
-- durable orders without group commit, measured beside the server.
\set price random(19000, 21000)
BEGIN;
INSERT INTO pgbench_orders (user_id, product_id, market, side, price_ticks, quantity,
    remaining_quantity, status, time_in_force, expires_at, created_at, updated_at, priority)
    VALUES (1, 1, 0, 'bid', :price, 1, 1, 'open', 'gtc', 1, 0, 0, 0);
INSERT INTO pgbench_events (channel, event_type, payload, created_at)
    VALUES ('product:1', 'BID_UPDATED',
            '{"type":"BID_UPDATED","channel":"product:1","price":"200.00","quantity":1,"orders":1}', 0);
END;
