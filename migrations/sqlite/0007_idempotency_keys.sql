-- The Idempotency-Key a client sent with the request that created an
-- upload: the same request sent again (a browser resends a POST whose
-- connection died before its answer) answers the upload it made, rather
-- than making another. Unique per owner among uploads that are not
-- expired; an expired upload's key may be used again.
ALTER TABLE uploads ADD COLUMN idempotency_key TEXT;
CREATE UNIQUE INDEX uploads_by_idempotency_key ON uploads (owner, idempotency_key)
    WHERE idempotency_key IS NOT NULL AND state <> 'expired';
