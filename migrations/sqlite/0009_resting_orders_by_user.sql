-- A trader's resting orders, newest first (`GET /orders?status=open`, and
-- the product page's "Your open orders", read again on each of the
-- trader's fills and cancels): `orders_by_user` holds them among all of
-- the trader's orders, so the read walked every finished one first. Only
-- resting orders are in this one, as in `orders_queue_place`: an order
-- adds an entry here while it rests, and none once it is done.
CREATE INDEX orders_resting_by_user ON orders (user_id, id)
    WHERE status IN ('open', 'partially_filled');
