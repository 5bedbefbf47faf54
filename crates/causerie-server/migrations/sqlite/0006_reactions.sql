-- Who gave which emoji to which message. Each toggle is also an entry of the room's log (a
-- change of kind 'react' or 'unreact', its emoji in `text`); this table holds where they stand.
CREATE TABLE reactions (
    room      TEXT    NOT NULL,
    target    INTEGER NOT NULL,
    emoji     TEXT    NOT NULL,
    user_id   TEXT    NOT NULL,
    user_name TEXT    NOT NULL,
    at        TEXT    NOT NULL,
    PRIMARY KEY (room, target, emoji, user_id)
) WITHOUT ROWID;
