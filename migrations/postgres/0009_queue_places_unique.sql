-- Two resting orders of one product never share a place in the queue:
-- recovery puts a product's resting orders back in `priority` order, and
-- a tie would leave their order to the database's choice. The index holds
-- the same entries as `orders_open`, which it replaces, so the check adds
-- no index write. The server has always taken each place from one counter,
-- so no row written before can stop this upgrade.
CREATE UNIQUE INDEX orders_queue_place ON orders (product_id, priority)
    WHERE status IN ('open', 'partially_filled');
DROP INDEX orders_open;
