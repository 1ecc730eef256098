-- The blob store's own state of an unfinished blob (for S3: the multipart
-- upload, its parts and the stored tail), recorded with the offset.
ALTER TABLE uploads ADD COLUMN blob_state TEXT;
