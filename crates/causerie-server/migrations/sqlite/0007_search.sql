-- Full-text search over messages: one FTS5 row per message that is not deleted, kept by the
-- triggers below in the same transaction as the message. Each message remembers its row
-- (`fts_rowid`, increasing with time, so that newest first is rowid order) so that an edit or a
-- deletion touches that row only. `secure-delete` removes a deleted message's words from the
-- index itself, not only its row: a deleted text is gone from the file.
CREATE VIRTUAL TABLE messages_fts USING fts5(
    room UNINDEXED,
    seq UNINDEXED,
    text,
    tokenize = 'unicode61 remove_diacritics 2'
);
INSERT INTO messages_fts (messages_fts, rank) VALUES ('secure-delete', 1);

ALTER TABLE messages ADD COLUMN fts_rowid INTEGER;

-- The messages stored before: numbered in the order they were sent.
CREATE TEMP TABLE fts_numbers (
    room TEXT NOT NULL, seq INTEGER NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (room, seq)
) WITHOUT ROWID;
INSERT INTO fts_numbers (room, seq, n)
    SELECT room, seq, ROW_NUMBER() OVER (ORDER BY sent_at, room, seq) FROM messages;
UPDATE messages SET fts_rowid =
    (SELECT n FROM fts_numbers f WHERE f.room = messages.room AND f.seq = messages.seq);
INSERT INTO messages_fts (rowid, room, seq, text)
    SELECT fts_rowid, room, seq, text FROM messages WHERE deleted = 0;
DROP TABLE fts_numbers;

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (room, seq, text) VALUES (new.room, new.seq, new.text);
    UPDATE messages SET fts_rowid = last_insert_rowid() WHERE room = new.room AND seq = new.seq;
END;

CREATE TRIGGER messages_fts_edit AFTER UPDATE OF text ON messages WHEN new.deleted = 0 BEGIN
    UPDATE messages_fts SET text = new.text WHERE rowid = new.fts_rowid;
END;

CREATE TRIGGER messages_fts_delete AFTER UPDATE OF deleted ON messages WHEN new.deleted = 1 BEGIN
    DELETE FROM messages_fts WHERE rowid = new.fts_rowid;
END;
