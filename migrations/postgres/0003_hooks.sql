-- The hook outbox: post-hook deliveries, written in the same transaction
-- as the change they report, and forgotten once delivered. `seq` orders an
-- upload's deliveries; `id` is the delivery ID receivers see. A delivery
-- is held by one instance while `claimed_until` has not passed; one past
-- its retry window is kept with `dead_at` set.
CREATE TABLE hook_deliveries (
    seq           BIGSERIAL PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    point         TEXT NOT NULL,
    upload_id     TEXT NOT NULL,
    body          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    give_up_at    BIGINT NOT NULL,
    next_at       BIGINT NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    claimed_by    TEXT,
    claimed_until BIGINT,
    last_error    TEXT,
    dead_at       BIGINT
);

CREATE INDEX hook_deliveries_due ON hook_deliveries (dead_at, next_at);
CREATE INDEX hook_deliveries_by_upload ON hook_deliveries (upload_id, seq);
