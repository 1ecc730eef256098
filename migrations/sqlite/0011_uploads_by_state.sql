-- Uploads in one state by ID, so that the start-up check reads the active
-- ones a page at a time in order: without it a page of 500 sorted every
-- active upload first (100 ms a page at 200,000 of them), with it 10 ms.
CREATE INDEX IF NOT EXISTS uploads_by_state ON uploads (state, id);
