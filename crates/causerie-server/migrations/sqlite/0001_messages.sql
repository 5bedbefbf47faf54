-- Rooms exist once created by a join; messages belong to a room and count up by seq in it.
CREATE TABLE rooms (
    name       TEXT PRIMARY KEY NOT NULL,
    created_at TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE messages (
    room        TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    id          TEXT    NOT NULL,
    client_id   TEXT    NOT NULL,
    author_id   TEXT    NOT NULL,
    author_name TEXT    NOT NULL,
    text        TEXT    NOT NULL,
    sent_at     TEXT    NOT NULL,
    PRIMARY KEY (room, seq)
) WITHOUT ROWID;

-- A retried send (same author, same client id) finds the stored message instead of a new row.
CREATE UNIQUE INDEX messages_by_author_client_id ON messages (author_id, client_id);
CREATE UNIQUE INDEX messages_by_id ON messages (id);
