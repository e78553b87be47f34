-- Counts the servers that have claimed this database as its writer. Each
-- server counts it up once, holding the writer's advisory lock, and checks
-- it whenever it takes the lock again after losing its connection: if it
-- moved, another server wrote meanwhile and this one stops rather than
-- write over that server's rows. One row, never deleted. SQLite needs none:
-- its lock file is held until the process ends.
CREATE TABLE writer_generation (
    only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    generation BIGINT NOT NULL CHECK (generation >= 0)
);
INSERT INTO writer_generation (only_row, generation) VALUES (TRUE, 0);
