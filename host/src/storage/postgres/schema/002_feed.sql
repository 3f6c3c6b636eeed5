-- The agents' feed every node shares (storage/postgres/feed.rs): events
-- in id order, kept a while for streams that reconnect to another node.
CREATE TABLE feed_events (
    id bigserial PRIMARY KEY,
    at_ms bigint NOT NULL,
    -- The event without its id, as JSON text (jsonb refuses the zero byte
    -- a customer's key may hold).
    record text NOT NULL
);
CREATE INDEX feed_events_at ON feed_events (at_ms);
