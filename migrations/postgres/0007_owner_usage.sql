-- What each owner holds, for the per-owner limits checked on every new
-- upload: the bytes of the uploads that own their blob (an instant upload
-- shares another's and counts nothing; an upload of unknown length counts
-- what it has received), and how many are unfinished, expired ones left
-- out. Adding these up over an owner's uploads on every request cost time
-- in proportion to how many the owner had; a trigger keeps them instead,
-- in the transaction of every change to an upload, so no way of changing
-- one can forget them.
--
-- The trigger locks the owner's row until its transaction ends. Every
-- transaction changes one upload, and does so before it changes `blobs`
-- (a blob is shared only by uploads of one owner), so two of them take
-- their locks in the same order and cannot deadlock. Instances of earlier
-- versions changed `blobs` first: stop them all before this migration.
-- Creating the triggers locks `uploads` against writes until this
-- migration commits, so the count below misses nothing written meanwhile.
--
-- The file can run again: it then counts everything afresh.
CREATE TABLE IF NOT EXISTS owner_usage (
    owner      TEXT PRIMARY KEY NOT NULL,
    bytes      BIGINT NOT NULL DEFAULT 0,
    unfinished BIGINT NOT NULL DEFAULT 0
);

CREATE OR REPLACE FUNCTION owner_usage_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.state <> 'expired' THEN
        UPDATE owner_usage SET
            bytes = bytes - CASE WHEN OLD.blob_key = OLD.id THEN COALESCE(OLD.length, OLD."offset") ELSE 0 END,
            unfinished = unfinished - CASE WHEN OLD.state = 'active' THEN 1 ELSE 0 END
        WHERE owner = OLD.owner;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.state <> 'expired' THEN
        INSERT INTO owner_usage (owner, bytes, unfinished)
        VALUES (
            NEW.owner,
            CASE WHEN NEW.blob_key = NEW.id THEN COALESCE(NEW.length, NEW."offset") ELSE 0 END,
            CASE WHEN NEW.state = 'active' THEN 1 ELSE 0 END
        )
        ON CONFLICT (owner) DO UPDATE SET
            bytes = owner_usage.bytes + EXCLUDED.bytes,
            unfinished = owner_usage.unfinished + EXCLUDED.unfinished;
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS owner_usage_insert ON uploads;
CREATE TRIGGER owner_usage_insert AFTER INSERT ON uploads
    FOR EACH ROW WHEN (NEW.state <> 'expired')
    EXECUTE FUNCTION owner_usage_follow();

DROP TRIGGER IF EXISTS owner_usage_delete ON uploads;
CREATE TRIGGER owner_usage_delete AFTER DELETE ON uploads
    FOR EACH ROW WHEN (OLD.state <> 'expired')
    EXECUTE FUNCTION owner_usage_follow();

-- A change that moves neither count (an upload of known length taking
-- more bytes, the usual one) does nothing.
DROP TRIGGER IF EXISTS owner_usage_update ON uploads;
CREATE TRIGGER owner_usage_update AFTER UPDATE OF owner, blob_key, length, "offset", state ON uploads
    FOR EACH ROW WHEN (
        OLD.owner IS DISTINCT FROM NEW.owner
        OR OLD.state IS DISTINCT FROM NEW.state
        OR OLD.blob_key IS DISTINCT FROM NEW.blob_key
        OR OLD.length IS DISTINCT FROM NEW.length
        OR (NEW.length IS NULL AND OLD."offset" IS DISTINCT FROM NEW."offset")
    )
    EXECUTE FUNCTION owner_usage_follow();

DELETE FROM owner_usage;
INSERT INTO owner_usage (owner, bytes, unfinished)
SELECT
    owner,
    SUM(CASE WHEN blob_key = id THEN COALESCE(length, "offset") ELSE 0 END),
    SUM(CASE WHEN state = 'active' THEN 1 ELSE 0 END)
FROM uploads
WHERE state <> 'expired'
GROUP BY owner;
