-- An order's status agrees with its quantities and its time in force, as
-- the engine keeps them: open means nothing filled yet, partially filled
-- means some, and only a good-till-cancelled order ever rests. A row
-- that says otherwise would be put back in a book at the next start.
-- NOT VALID: checked for every row written from now on; rows written
-- before are not read again here, so that an upgrade cannot be stopped by
-- an old row.
ALTER TABLE orders
    ADD CONSTRAINT orders_open_is_unfilled
        CHECK (status <> 'open' OR remaining_quantity = quantity) NOT VALID,
    ADD CONSTRAINT orders_partially_filled_is_partly_filled
        CHECK (status <> 'partially_filled' OR remaining_quantity < quantity) NOT VALID,
    ADD CONSTRAINT orders_only_gtc_rests
        CHECK (time_in_force = 'gtc' OR status NOT IN ('open', 'partially_filled')) NOT VALID;
