-- What the alert engine remembers across restarts and replicas: its state
-- document, the alert ids already sent (a primary key: of two replicas
-- claiming one id, one gets it), the Web Push subscriptions and key pair,
-- and one delivery queue per channel.
CREATE TABLE usage_alert_state (
    id         integer     PRIMARY KEY CHECK (id = 1),
    state      bytea       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE usage_alert_claims (
    id text        PRIMARY KEY,
    at timestamptz NOT NULL
);
CREATE INDEX usage_alert_claims_at ON usage_alert_claims (at);
CREATE TABLE usage_push_subscriptions (
    endpoint text      PRIMARY KEY,
    seq      bigserial NOT NULL,
    sub      jsonb     NOT NULL
);
CREATE TABLE usage_vapid_keys (
    id      integer PRIMARY KEY CHECK (id = 1),
    public  text    NOT NULL,
    private text    NOT NULL
);
CREATE TABLE usage_alert_queue (
    channel  text      NOT NULL,
    key      text      NOT NULL,
    seq      bigserial NOT NULL,
    delivery jsonb     NOT NULL,
    PRIMARY KEY (channel, key)
);
CREATE INDEX usage_alert_queue_order ON usage_alert_queue (channel, seq);
