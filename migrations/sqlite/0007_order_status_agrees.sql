-- An order's status agrees with its quantities and its time in force, as
-- the engine keeps them: open means nothing filled yet, partially filled
-- means some, and only a good-till-cancelled order ever rests. A row
-- that says otherwise would be put back in a book at the next start.
--
-- SQLite adds no CHECK to a table that exists, so triggers refuse what
-- the CHECKs would, on every row written from now on. They also refuse
-- what SQLite's loose column types let through and PostgreSQL's do not: a
-- NULL id (a non-INTEGER primary key takes NULL in SQLite) and a price or
-- quantity that is not an integer (1.5, '1.5'), which CHECK (x > 0) let
-- pass, and which recovery would then fail to read.

CREATE TRIGGER orders_agree_on_insert BEFORE INSERT ON orders
WHEN typeof(NEW.id) <> 'integer'
  OR typeof(NEW.price_ticks) <> 'integer'
  OR typeof(NEW.quantity) <> 'integer'
  OR typeof(NEW.remaining_quantity) <> 'integer'
  OR (NEW.status = 'open' AND NEW.remaining_quantity <> NEW.quantity)
  OR (NEW.status = 'partially_filled' AND NEW.remaining_quantity >= NEW.quantity)
  OR (NEW.time_in_force <> 'gtc' AND NEW.status IN ('open', 'partially_filled'))
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: orders_agree');
END;

CREATE TRIGGER orders_agree_on_update BEFORE UPDATE ON orders
WHEN typeof(NEW.id) <> 'integer'
  OR typeof(NEW.price_ticks) <> 'integer'
  OR typeof(NEW.quantity) <> 'integer'
  OR typeof(NEW.remaining_quantity) <> 'integer'
  OR (NEW.status = 'open' AND NEW.remaining_quantity <> NEW.quantity)
  OR (NEW.status = 'partially_filled' AND NEW.remaining_quantity >= NEW.quantity)
  OR (NEW.time_in_force <> 'gtc' AND NEW.status IN ('open', 'partially_filled'))
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: orders_agree');
END;

CREATE TRIGGER matches_are_integers BEFORE INSERT ON matches
WHEN typeof(NEW.id) <> 'integer'
  OR typeof(NEW.price_ticks) <> 'integer'
  OR typeof(NEW.quantity) <> 'integer'
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: matches_are_integers');
END;
