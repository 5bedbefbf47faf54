-- Who a message mentions: on the message (its ids, as a JSON array, NULL for none), and one row
-- per person mentioned, to count each user's unread mentions per room without reading messages.
ALTER TABLE messages ADD COLUMN mentions TEXT;

CREATE TABLE mentions (
    user_id TEXT    NOT NULL,
    room    TEXT    NOT NULL,
    seq     INTEGER NOT NULL,
    PRIMARY KEY (user_id, room, seq)
) WITHOUT ROWID;
