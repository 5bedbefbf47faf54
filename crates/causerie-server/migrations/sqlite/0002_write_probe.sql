-- One row the writer rewrites while writes fail (a full disk, a lock held by another process),
-- to learn that they work again without waiting for the next message.
CREATE TABLE write_probe (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    written_at TEXT NOT NULL
);
