-- The event log: what happened to uploads, per owner, with increasing ids.
CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    owner      TEXT NOT NULL,
    kind       TEXT NOT NULL,
    upload_id  TEXT NOT NULL,
    data       TEXT NOT NULL,      -- the upload's summary, JSON
    created_at INTEGER NOT NULL    -- milliseconds since the Unix epoch
);

CREATE INDEX events_by_owner ON events (owner, id);
CREATE INDEX events_by_time ON events (created_at);
