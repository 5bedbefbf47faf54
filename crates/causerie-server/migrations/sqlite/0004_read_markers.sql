-- How far each user has read each room, so that all their connections agree on what is unread.
-- A marker only moves forward; a user who never marked a room read has no row.
CREATE TABLE read_markers (
    user_id TEXT    NOT NULL,
    room    TEXT    NOT NULL,
    seq     INTEGER NOT NULL,
    PRIMARY KEY (user_id, room)
) WITHOUT ROWID;
