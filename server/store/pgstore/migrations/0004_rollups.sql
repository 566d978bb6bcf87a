-- Per account the rollup (hourly maxima and windows, kept --history-days)
-- that history answers from beyond retention, in the file store's
-- rollup.json layout. Derived data: each replica keeps it in memory,
-- writes it here after saves, and at start reads it back and applies the
-- versions stored after through_seq; a missing or damaged one is rebuilt
-- from the versions.
CREATE TABLE usage_rollups (
    account     text        PRIMARY KEY,
    through_seq bigint      NOT NULL,
    rollup      jsonb       NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
