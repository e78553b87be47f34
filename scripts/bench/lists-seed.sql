-- Trades for scripts/bench-lists: product 1 (20 sizes) has OLDER trades,
-- between the users __SELLER__ and __BUYER__; product 2 (20 sizes) has
-- NEWER later ones, between two other users. Every trade refers to one
-- filled order of each side, which is all the foreign keys need. The
-- seller also has three asks resting on product 1 from before OLDER
-- cancelled ones: a list of resting orders that reads the finished ones
-- shows it.
INSERT INTO users (id, username, password_hash, role, created_at)
    VALUES (1000003, 'bench3', 'x', 'trader', 0), (1000004, 'bench4', 'x', 'trader', 0);
INSERT INTO products (id, sku, name, brand, tick_units, scale, created_at)
    VALUES (1, 'LISTS-1', 'Lists one', 'Bench', 1, 2, 0), (2, 'LISTS-2', 'Lists two', 'Bench', 1, 2, 0);
WITH RECURSIVE m(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM m WHERE x < 19)
INSERT INTO product_sizes (product_id, market, size) SELECT p, x, CAST(x AS TEXT)
    FROM m, (SELECT 1 AS p UNION ALL SELECT 2);
INSERT INTO orders (id, user_id, product_id, market, side, price_ticks, quantity,
    remaining_quantity, status, time_in_force, cancel_reason, expires_at, created_at,
    updated_at, priority) VALUES
    (1, __BUYER__, 1, 0, 'bid', 100, 10000, 0, 'filled', 'gtc', NULL, 9000000000000000, 1, 1, 1),
    (2, __SELLER__, 1, 0, 'ask', 100, 10000, 0, 'filled', 'gtc', NULL, 9000000000000000, 1, 1, 2),
    (3, 1000003, 2, 0, 'bid', 100, 10000, 0, 'filled', 'gtc', NULL, 9000000000000000, 1, 1, 3),
    (4, 1000004, 2, 0, 'ask', 100, 10000, 0, 'filled', 'gtc', NULL, 9000000000000000, 1, 1, 4),
    (5, __SELLER__, 1, 1, 'ask', 500, 1, 1, 'open', 'gtc', NULL, 9000000000000000, 1, 1, 5),
    (6, __SELLER__, 1, 2, 'ask', 500, 1, 1, 'open', 'gtc', NULL, 9000000000000000, 1, 1, 6),
    (7, __SELLER__, 1, 3, 'ask', 500, 1, 1, 'open', 'gtc', NULL, 9000000000000000, 1, 1, 7);
WITH RECURSIVE k(x) AS (SELECT 8 UNION ALL SELECT x + 1 FROM k WHERE x < OLDER + 7)
INSERT INTO orders (id, user_id, product_id, market, side, price_ticks, quantity,
    remaining_quantity, status, time_in_force, cancel_reason, expires_at, created_at,
    updated_at, priority)
    SELECT x, __SELLER__, 1, x % 20, 'ask', 500, 1, 1, 'cancelled', 'gtc', 'requested',
        9000000000000000, x, x, x FROM k;
WITH RECURSIVE k(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM k WHERE x < OLDER)
INSERT INTO matches (id, product_id, market, price_ticks, quantity, bid_order_id,
    ask_order_id, buyer_id, seller_id, taker_side, created_at)
    SELECT x, 1, x % 20, 100, 1, 1, 2, __BUYER__, __SELLER__, 'bid', x FROM k;
WITH RECURSIVE k(x) AS (SELECT OLDER + 1 UNION ALL SELECT x + 1 FROM k WHERE x < OLDER + NEWER)
INSERT INTO matches (id, product_id, market, price_ticks, quantity, bid_order_id,
    ask_order_id, buyer_id, seller_id, taker_side, created_at)
    SELECT x, 2, x % 20, 100, 1, 3, 4, 1000003, 1000004, 'bid', x FROM k;
