-- Versions: one row per stored snapshot. scraped_s/scraped_ns keep the
-- snapshot's scrapedAt to the nanosecond (timestamptz stops at the
-- microsecond), seq is the arrival order that breaks ties.
CREATE TABLE usage_versions (
    seq        bigserial   PRIMARY KEY,
    id         text        NOT NULL UNIQUE,
    account    text        NOT NULL,
    scraped_s  bigint      NOT NULL,
    scraped_ns integer     NOT NULL CHECK (scraped_ns BETWEEN 0 AND 999999999),
    stored_at  timestamptz NOT NULL,
    -- A replay on any replica finds the original through this constraint.
    idem_key   text        UNIQUE,
    body_hash  text        NOT NULL DEFAULT '',
    snapshot   jsonb       NOT NULL
);
CREATE INDEX usage_versions_order ON usage_versions (account, scraped_s, scraped_ns, seq);

-- Rows whose snapshot does not decode or validate are moved here, like
-- corrupt files to <account>/corrupt/: neither lost nor read again.
CREATE TABLE usage_corrupt_versions (
    seq      bigint      PRIMARY KEY,
    id       text        NOT NULL,
    account  text        NOT NULL,
    reason   text        NOT NULL,
    moved_at timestamptz NOT NULL DEFAULT now(),
    snapshot jsonb
);

-- The write check of each store instance writes its row here.
CREATE TABLE usage_probe (
    instance text        PRIMARY KEY,
    at       timestamptz NOT NULL
);
