-- Edits and deletions are entries of a room's log too: they take the next seq, shared with
-- messages, so that catch-up delivers them in order. A message row holds its current state.
ALTER TABLE messages ADD COLUMN edited_at TEXT;
ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;

CREATE TABLE changes (
    room        TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    id          TEXT    NOT NULL,
    client_id   TEXT    NOT NULL,
    author_id   TEXT    NOT NULL,
    author_name TEXT    NOT NULL,
    -- 'edit' or 'delete'
    kind        TEXT    NOT NULL,
    target      INTEGER NOT NULL,
    -- The new text of an edit; NULL for a deletion, and erased when the message is deleted.
    text        TEXT,
    at          TEXT    NOT NULL,
    PRIMARY KEY (room, seq)
) WITHOUT ROWID;

-- A retried edit or deletion (same author, same client id) finds the stored change.
CREATE UNIQUE INDEX changes_by_author_client_id ON changes (author_id, client_id);
-- A deletion erases the text of the message's earlier edits.
CREATE INDEX changes_by_target ON changes (room, target);
