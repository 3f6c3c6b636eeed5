-- Where the other nodes reach each node: an agent's action on a
-- conversation another node runs is forwarded there (server/agents/forward.rs).
ALTER TABLE nodes ADD COLUMN address text;
