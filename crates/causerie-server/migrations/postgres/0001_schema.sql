-- Causerie's history on PostgreSQL: the same log as the SQLite store's (see migrations/sqlite),
-- shared by every node of a cluster. Times are text in one fixed UTC format (they sort as text),
-- as in SQLite, so that both stores hand out the same strings. Room names and ids compare
-- byte by byte (COLLATE "C"), as Rust strings do: pages of rooms are in the same order on both.

-- Each room's latest seq (`head`): a node assigns seqs inside the transaction that stores the
-- entries, with the room's row locked (FOR UPDATE) until it commits, so that seqs are gap-free
-- and unique whichever node writes.
CREATE TABLE rooms (
    name       TEXT COLLATE "C" PRIMARY KEY,
    created_at TEXT   NOT NULL,
    head       BIGINT NOT NULL DEFAULT 0
);

-- `n` numbers messages across rooms in the order they were stored: search lists newest first by
-- it. `search` holds the message's words, folded as the server folds a query's (lower case,
-- without diacritics), for the GIN index; NULL once deleted.
CREATE TABLE messages (
    room        TEXT COLLATE "C" NOT NULL,
    seq         BIGINT  NOT NULL,
    n           BIGINT  GENERATED ALWAYS AS IDENTITY,
    id          TEXT    NOT NULL,
    client_id   TEXT    NOT NULL,
    author_id   TEXT    NOT NULL,
    author_name TEXT    NOT NULL,
    text        TEXT    NOT NULL,
    sent_at     TEXT    NOT NULL,
    edited_at   TEXT,
    deleted     BOOLEAN NOT NULL DEFAULT false,
    reply_to    BIGINT,
    -- Its ids, as a JSON array; NULL for none.
    mentions    TEXT,
    search      TSVECTOR,
    PRIMARY KEY (room, seq)
);

-- A retried send (same author, same client id), on any node, finds the stored message.
CREATE UNIQUE INDEX messages_by_author_client_id ON messages (author_id, client_id);
CREATE UNIQUE INDEX messages_by_id ON messages (id);
CREATE INDEX messages_search ON messages USING GIN (search);
CREATE INDEX messages_by_n ON messages (n);

-- Edits, deletions and reactions: entries of a room's log too, sharing its seqs.
CREATE TABLE changes (
    room        TEXT COLLATE "C" NOT NULL,
    seq         BIGINT NOT NULL,
    id          TEXT   NOT NULL,
    client_id   TEXT   NOT NULL,
    author_id   TEXT   NOT NULL,
    author_name TEXT   NOT NULL,
    -- 'edit', 'delete', 'react' or 'unreact'
    kind        TEXT   NOT NULL,
    target      BIGINT NOT NULL,
    -- An edit's new text (erased when the message is deleted), or a reaction's emoji.
    text        TEXT,
    at          TEXT   NOT NULL,
    PRIMARY KEY (room, seq)
);

CREATE UNIQUE INDEX changes_by_author_client_id ON changes (author_id, client_id);
CREATE INDEX changes_by_target ON changes (room, target);

-- How far each user has read each room; only moves forward.
CREATE TABLE read_markers (
    user_id TEXT COLLATE "C" NOT NULL,
    room    TEXT COLLATE "C" NOT NULL,
    seq     BIGINT NOT NULL,
    PRIMARY KEY (user_id, room)
);

-- Where each reaction stands; each toggle is also a change.
CREATE TABLE reactions (
    room      TEXT COLLATE "C" NOT NULL,
    target    BIGINT NOT NULL,
    emoji     TEXT   NOT NULL,
    user_id   TEXT   NOT NULL,
    user_name TEXT   NOT NULL,
    at        TEXT   NOT NULL,
    PRIMARY KEY (room, target, emoji, user_id)
);

-- One row per person a message mentions, to count unread mentions without reading messages.
CREATE TABLE mentions (
    user_id TEXT COLLATE "C" NOT NULL,
    room    TEXT COLLATE "C" NOT NULL,
    seq     BIGINT NOT NULL,
    PRIMARY KEY (user_id, room, seq)
);

-- The people the cluster has seen, under the name they last connected with.
CREATE TABLE users (
    id   TEXT COLLATE "C" PRIMARY KEY,
    name TEXT NOT NULL
);

-- Each direct conversation, once per member, with when it was last written in.
CREATE TABLE directs (
    user_id TEXT COLLATE "C" NOT NULL,
    room    TEXT COLLATE "C" NOT NULL,
    peer_id TEXT NOT NULL,
    last_at TEXT NOT NULL,
    PRIMARY KEY (user_id, room)
);

CREATE INDEX directs_by_activity ON directs (user_id, last_at);

-- The row a node rewrites while its writes fail, to learn that they work again.
CREATE TABLE write_probe (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    written_at TEXT NOT NULL
);
