-- An account's versions commit in the order of their seq. Before, the seq
-- came from the column default, drawn before the account's counter row was
-- locked, so a save could draw a lower seq and commit after a save of the
-- same account with a higher one (on another replica): a rollup written in
-- between said "through seq N" without that version, and the catch-up
-- after a restart, which reads the seqs above N, never applied it. Now a
-- trigger draws the seq while it holds the account's row in usage_accounts
-- (locked until the commit), so a later seq of one account is drawn only
-- after every earlier one committed or rolled back: the versions one
-- snapshot sees are always all of the account's versions up to some seq.
--
-- Each version also records the seq of the account's version before it
-- (prev_seq), so that a replica applying a version to its rollup can tell
-- whether it has applied everything before it (a notice it missed, a save
-- of its own that finished first) and reads what it lacks first.
ALTER TABLE usage_accounts ADD COLUMN last_seq bigint NOT NULL DEFAULT 0;
UPDATE usage_accounts a SET last_seq = m.seq
FROM (SELECT account, max(seq) AS seq FROM usage_versions GROUP BY account) m
WHERE m.account = a.account;

ALTER TABLE usage_versions ADD COLUMN prev_seq bigint;
-- The trigger sets seq; a default would draw (and waste) a second value.
ALTER TABLE usage_versions ALTER COLUMN seq DROP DEFAULT;

CREATE FUNCTION usage_order_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT last_seq INTO NEW.prev_seq FROM usage_accounts WHERE account = NEW.account FOR UPDATE;
    IF NOT FOUND THEN
        -- A new account: its counter row is made here (0006) and counted by
        -- usage_count_versions after the insert (0003).
        INSERT INTO usage_accounts (account, versions) VALUES (NEW.account, 0) ON CONFLICT (account) DO NOTHING;
        SELECT last_seq INTO NEW.prev_seq FROM usage_accounts WHERE account = NEW.account FOR UPDATE;
    END IF;
    NEW.seq := nextval('usage_versions_seq_seq');
    RETURN NEW;
END $$;

CREATE TRIGGER usage_order_version BEFORE INSERT ON usage_versions
FOR EACH ROW EXECUTE FUNCTION usage_order_version();

-- last_seq moves only when the row is stored: a BEFORE trigger also runs
-- for a row that ON CONFLICT (idem_key) DO NOTHING then drops (a replay),
-- and the save's statements commit together even then (one implicit
-- transaction per batch), so advancing it there would name a version that
-- does not exist as the next one's predecessor.
CREATE FUNCTION usage_order_version_stored() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE usage_accounts SET last_seq = NEW.seq WHERE account = NEW.account;
    RETURN NULL;
END $$;

CREATE TRIGGER usage_order_version_stored AFTER INSERT ON usage_versions
FOR EACH ROW EXECUTE FUNCTION usage_order_version_stored();
