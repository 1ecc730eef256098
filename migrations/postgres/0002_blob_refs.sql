-- How many live records use each blob (an instant upload shares the blob
-- of an identical finished upload). Records take and give back references
-- in the same transaction as their own insert, deletion or expiry, so a
-- blob is deleted exactly when its last record goes, whatever runs at the
-- same time. A blob with no row here is an orphan (its record never got
-- written, or went away while the bytes were being removed).
CREATE TABLE blobs (
    key  TEXT PRIMARY KEY NOT NULL,
    refs BIGINT NOT NULL
);

INSERT INTO blobs (key, refs)
    SELECT blob_key, COUNT(*) FROM uploads WHERE state != 'expired' GROUP BY blob_key;

-- Server secrets (the key that signs session cookies), made once and shared
-- by every instance on the database.
CREATE TABLE settings (
    name  TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

-- An upload's latest progress event replaces the one before (one per
-- upload), so progress events are found by upload.
CREATE INDEX events_by_upload ON events (upload_id);
