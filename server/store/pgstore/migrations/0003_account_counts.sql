-- Per account, how many versions it has, kept by a trigger so that every
-- insert and delete (saves, imports, retention, quarantine, and anyone
-- else's) counts: a version's number and the total then cost a key lookup
-- instead of counting the account's rows.
CREATE TABLE usage_accounts (
    account  text   PRIMARY KEY,
    versions bigint NOT NULL CHECK (versions >= 0)
);
INSERT INTO usage_accounts (account, versions)
SELECT account, count(*) FROM usage_versions GROUP BY account;

CREATE FUNCTION usage_count_versions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO usage_accounts AS a (account, versions) VALUES (NEW.account, 1)
        ON CONFLICT (account) DO UPDATE SET versions = a.versions + 1;
        RETURN NEW;
    END IF;
    UPDATE usage_accounts SET versions = versions - 1 WHERE account = OLD.account;
    RETURN OLD;
END $$;

CREATE TRIGGER usage_count_versions AFTER INSERT OR DELETE ON usage_versions
FOR EACH ROW EXECUTE FUNCTION usage_count_versions();
