-- A finished part of a concatenation now expires like an abandoned
-- upload (its final upload holds a copy of its bytes). Parts finished
-- before this version have no expiry: they get one a day after they
-- finished (the default --expire-after; a migration cannot read the
-- configured one), so parts left behind before the upgrade go too.
UPDATE uploads SET expires_at = COALESCE(completed_at, updated_at) + 86400000
    WHERE state = 'complete' AND concat = 'partial' AND expires_at IS NULL;
