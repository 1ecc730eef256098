-- The same schema as migrations/sqlite, for several Ferry instances sharing
-- one PostgreSQL database. Times are milliseconds since the Unix epoch.
CREATE TABLE uploads (
    id           TEXT PRIMARY KEY NOT NULL,
    owner        TEXT NOT NULL,
    blob_key     TEXT NOT NULL,
    length       BIGINT,                      -- NULL while deferred
    "offset"     BIGINT NOT NULL DEFAULT 0,   -- durable bytes
    metadata     TEXT NOT NULL DEFAULT '',    -- canonical Upload-Metadata
    concat       TEXT,                        -- NULL, 'partial' or 'final:<id> <id> ...'
    state        TEXT NOT NULL,               -- 'active', 'complete', 'expired'
    sha256       TEXT,                        -- whole-file digest, once complete
    hash_state   BYTEA,                       -- running SHA-256 state at "offset"
    blob_state   TEXT,                        -- the blob store's state at "offset"
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    completed_at BIGINT
);

CREATE INDEX uploads_by_owner ON uploads (owner, state, created_at);
CREATE INDEX uploads_by_hash ON uploads (owner, sha256, length) WHERE sha256 IS NOT NULL;
CREATE INDEX uploads_by_expiry ON uploads (state, expires_at);
CREATE INDEX uploads_by_blob ON uploads (blob_key);

-- The event log: what happened to uploads, per owner, with increasing ids
-- (inserts take a table lock so ids become visible in order).
CREATE TABLE events (
    id         BIGSERIAL PRIMARY KEY,
    owner      TEXT NOT NULL,
    kind       TEXT NOT NULL,
    upload_id  TEXT NOT NULL,
    data       TEXT NOT NULL,      -- the upload's summary, JSON
    created_at BIGINT NOT NULL     -- milliseconds since the Unix epoch
);

CREATE INDEX events_by_owner ON events (owner, id);
CREATE INDEX events_by_time ON events (created_at);
