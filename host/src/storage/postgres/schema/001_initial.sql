-- flowhost's tables. Records are JSON text (serde's own bytes, read back
-- as written); the columns beside them are what the hot paths look up or
-- order by. Keys compare byte-wise (COLLATE "C"), as the sled store's do.
-- A conversation's key (`account NUL customer`) holds a zero byte, which
-- text cannot: those columns are bytea, and so are the keys that come
-- from outside (channels' message ids, customer ids within session ids,
-- saved-data names), which sled takes whatever bytes they hold.

-- Conversations are split into a fixed number of partitions (a hash of
-- the conversation's key); a node owns partitions through leases (see
-- leases.rs) and works only on its own partitions' rows.
CREATE TABLE flowhost_cluster (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    partitions integer NOT NULL
);
INSERT INTO flowhost_cluster (partitions) VALUES (32);
CREATE TABLE partition_leases (
    partition integer PRIMARY KEY,
    owner text,
    epoch bigint NOT NULL DEFAULT 0
);
INSERT INTO partition_leases (partition) SELECT generate_series(0, 31);
-- Nodes and when each last said it was alive (the database's clock).
CREATE TABLE nodes (
    id text PRIMARY KEY,
    seen_ms bigint NOT NULL
);

CREATE TABLE inbox (
    seq bigserial PRIMARY KEY,
    partition integer NOT NULL,
    record bytea NOT NULL,
    accepted_ms bigint NOT NULL
);
CREATE INDEX inbox_by_partition ON inbox (partition, seq);

-- Dedupe keys of accepted events, and when (expired after 48 h).
CREATE TABLE seen (
    key bytea PRIMARY KEY,
    at_ms bigint NOT NULL
);
CREATE INDEX seen_by_time ON seen (at_ms);

CREATE TABLE dead_letters (
    seq bigint PRIMARY KEY,
    record text NOT NULL
);

CREATE TABLE restarts (
    seq bigint PRIMARY KEY,
    runs integer NOT NULL
);

CREATE TABLE conversations (
    key bytea PRIMARY KEY,
    record text NOT NULL
);

CREATE TABLE conversation_data (
    conversation_id bytea NOT NULL,
    key bytea NOT NULL,
    value text NOT NULL,
    PRIMARY KEY (conversation_id, key)
);

-- One row per turn: that turn's lines.
CREATE TABLE history (
    conversation bytea NOT NULL,
    turn bigint NOT NULL,
    lines text NOT NULL,
    PRIMARY KEY (conversation, turn)
);

CREATE TABLE tickets (
    id text COLLATE "C" PRIMARY KEY,
    conversation_id bytea NOT NULL,
    created_ms bigint NOT NULL,
    record text NOT NULL
);
CREATE INDEX tickets_by_conversation ON tickets (conversation_id, created_ms, id);

CREATE TABLE timers (
    id text COLLATE "C" PRIMARY KEY,
    partition integer NOT NULL,
    due_ms bigint NOT NULL,
    record text NOT NULL
);
CREATE INDEX timers_by_due ON timers (partition, due_ms, id);

-- Message ids are UUIDv7: a conversation's messages in id order are in
-- the order they were queued.
CREATE TABLE outbox (
    conversation bytea NOT NULL,
    id text COLLATE "C" NOT NULL,
    partition integer NOT NULL,
    record text NOT NULL,
    PRIMARY KEY (conversation, id)
);
CREATE INDEX outbox_by_partition ON outbox (partition, conversation, id);
CREATE INDEX outbox_by_id ON outbox (id);

CREATE TABLE sent (
    channel_id bytea PRIMARY KEY,
    message_id text COLLATE "C" NOT NULL
);

CREATE TABLE failed (
    id text COLLATE "C" PRIMARY KEY,
    record text NOT NULL
);

CREATE TABLE in_flight (
    id text COLLATE "C" PRIMARY KEY,
    at_ms bigint NOT NULL
);

CREATE TABLE settling (
    message_id text COLLATE "C" PRIMARY KEY,
    record text NOT NULL
);

CREATE TABLE echoes (
    channel_id bytea PRIMARY KEY,
    at_ms bigint NOT NULL,
    record text NOT NULL
);

CREATE TABLE agents (
    id text COLLATE "C" PRIMARY KEY,
    token_sha256 text COLLATE "C" NOT NULL UNIQUE,
    record text NOT NULL
);

-- The placement index turns keep.
CREATE TABLE waiting (
    conversation bytea PRIMARY KEY,
    record text NOT NULL
);
CREATE TABLE assigned (
    agent text COLLATE "C" NOT NULL,
    conversation bytea NOT NULL,
    PRIMARY KEY (agent, conversation)
);
CREATE TABLE closed (
    agent text COLLATE "C" NOT NULL,
    conversation bytea NOT NULL,
    at_ms bigint NOT NULL,
    PRIMARY KEY (agent, conversation)
);

CREATE TABLE flow_versions (
    number bigint PRIMARY KEY,
    record text NOT NULL
);
-- One row each: the version in production (0: none) and the sandbox.
CREATE TABLE flow_production (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    number bigint NOT NULL
);
INSERT INTO flow_production (number) VALUES (0);
CREATE TABLE sandbox (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    record text NOT NULL
);

CREATE TABLE analytics (
    id bigserial PRIMARY KEY,
    at_ms bigint NOT NULL,
    record text NOT NULL
);
CREATE INDEX analytics_by_time ON analytics (at_ms, id);

CREATE TABLE uploads (
    sha256 text COLLATE "C" PRIMARY KEY,
    record text NOT NULL,
    bytes bytea NOT NULL
);

CREATE TABLE instagram_connections (
    ig_user_id text COLLATE "C" PRIMARY KEY,
    record text NOT NULL,
    sealed_token text NOT NULL
);
