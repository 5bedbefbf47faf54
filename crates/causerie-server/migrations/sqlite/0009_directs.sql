-- The people this server has seen, under the name they last connected with: whom a direct
-- conversation can be opened with, and how it is listed.
CREATE TABLE users (
    id   TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL
) WITHOUT ROWID;

-- Each direct conversation, once per member: its room (a row of `rooms`, named by
-- `direct_room`), the other member, and when it was opened or last written in, by which a
-- member's conversations are listed, the most recent first, without reading their messages.
CREATE TABLE directs (
    user_id TEXT NOT NULL,
    room    TEXT NOT NULL,
    peer_id TEXT NOT NULL,
    last_at TEXT NOT NULL,
    PRIMARY KEY (user_id, room)
) WITHOUT ROWID;

CREATE INDEX directs_by_activity ON directs (user_id, last_at);
