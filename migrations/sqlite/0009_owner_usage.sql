-- What each owner holds, for the per-owner limits checked on every new
-- upload: the bytes of the uploads that own their blob (an instant upload
-- shares another's and counts nothing; an upload of unknown length counts
-- what it has received), and how many are unfinished, expired ones left
-- out. Adding these up over an owner's uploads on every request cost time
-- in proportion to how many the owner had; triggers keep them instead, in
-- the transaction of every change to an upload, so no way of changing one
-- can forget them.
--
-- The file can run again: it then counts everything afresh.
CREATE TABLE IF NOT EXISTS owner_usage (
    owner      TEXT PRIMARY KEY NOT NULL,
    bytes      INTEGER NOT NULL DEFAULT 0,
    unfinished INTEGER NOT NULL DEFAULT 0
);

DROP TRIGGER IF EXISTS owner_usage_insert;
CREATE TRIGGER owner_usage_insert AFTER INSERT ON uploads
WHEN NEW.state <> 'expired'
BEGIN
    INSERT INTO owner_usage (owner, bytes, unfinished)
    VALUES (
        NEW.owner,
        CASE WHEN NEW.blob_key = NEW.id THEN COALESCE(NEW.length, NEW."offset") ELSE 0 END,
        CASE WHEN NEW.state = 'active' THEN 1 ELSE 0 END
    )
    ON CONFLICT (owner) DO UPDATE SET
        bytes = bytes + excluded.bytes,
        unfinished = unfinished + excluded.unfinished;
END;

DROP TRIGGER IF EXISTS owner_usage_delete;
CREATE TRIGGER owner_usage_delete AFTER DELETE ON uploads
WHEN OLD.state <> 'expired'
BEGIN
    UPDATE owner_usage SET
        bytes = bytes - CASE WHEN OLD.blob_key = OLD.id THEN COALESCE(OLD.length, OLD."offset") ELSE 0 END,
        unfinished = unfinished - CASE WHEN OLD.state = 'active' THEN 1 ELSE 0 END
    WHERE owner = OLD.owner;
END;

-- A change that moves neither count (an upload of known length taking
-- more bytes, the usual one) does nothing.
DROP TRIGGER IF EXISTS owner_usage_update;
CREATE TRIGGER owner_usage_update AFTER UPDATE OF owner, blob_key, length, "offset", state ON uploads
WHEN OLD.owner IS NOT NEW.owner
  OR OLD.state IS NOT NEW.state
  OR OLD.blob_key IS NOT NEW.blob_key
  OR OLD.length IS NOT NEW.length
  OR (NEW.length IS NULL AND OLD."offset" IS NOT NEW."offset")
BEGIN
    UPDATE owner_usage SET
        bytes = bytes - CASE WHEN OLD.blob_key = OLD.id THEN COALESCE(OLD.length, OLD."offset") ELSE 0 END,
        unfinished = unfinished - CASE WHEN OLD.state = 'active' THEN 1 ELSE 0 END
    WHERE owner = OLD.owner AND OLD.state <> 'expired';
    INSERT INTO owner_usage (owner, bytes, unfinished)
    SELECT
        NEW.owner,
        CASE WHEN NEW.blob_key = NEW.id THEN COALESCE(NEW.length, NEW."offset") ELSE 0 END,
        CASE WHEN NEW.state = 'active' THEN 1 ELSE 0 END
    WHERE NEW.state <> 'expired'
    ON CONFLICT (owner) DO UPDATE SET
        bytes = bytes + excluded.bytes,
        unfinished = unfinished + excluded.unfinished;
END;

DELETE FROM owner_usage;
INSERT INTO owner_usage (owner, bytes, unfinished)
SELECT
    owner,
    SUM(CASE WHEN blob_key = id THEN COALESCE(length, "offset") ELSE 0 END),
    SUM(CASE WHEN state = 'active' THEN 1 ELSE 0 END)
FROM uploads
WHERE state <> 'expired'
GROUP BY owner;
