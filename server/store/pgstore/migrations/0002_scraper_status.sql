-- The latest scraper report per account. at_s/at_ns order reports so that
-- a late one never replaces a newer one, whichever replica receives it.
CREATE TABLE usage_scraper_status (
    account    text        PRIMARY KEY,
    at_s       bigint      NOT NULL,
    at_ns      integer     NOT NULL,
    status     jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
