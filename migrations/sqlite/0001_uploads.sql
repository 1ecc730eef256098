-- One row per upload. Times are milliseconds since the Unix epoch.
CREATE TABLE uploads (
    id           TEXT PRIMARY KEY NOT NULL,
    owner        TEXT NOT NULL,
    blob_key     TEXT NOT NULL,
    length       INTEGER,                      -- NULL while deferred
    "offset"     INTEGER NOT NULL DEFAULT 0,   -- durable bytes
    metadata     TEXT NOT NULL DEFAULT '',     -- canonical Upload-Metadata
    concat       TEXT,                         -- NULL, 'partial' or 'final:<id> <id> ...'
    state        TEXT NOT NULL,                -- 'active', 'complete', 'expired'
    sha256       TEXT,                         -- whole-file digest, once complete
    hash_state   BLOB,                         -- running SHA-256 state at "offset"
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    completed_at INTEGER
);

CREATE INDEX uploads_by_owner ON uploads (owner, state, created_at);
CREATE INDEX uploads_by_hash ON uploads (owner, sha256, length) WHERE sha256 IS NOT NULL;
CREATE INDEX uploads_by_expiry ON uploads (state, expires_at);
CREATE INDEX uploads_by_blob ON uploads (blob_key);
