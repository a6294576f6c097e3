-- hydrant schema, version 3: account changes the admin CLI made for a running server.
--
-- `hydrant user remove|passwd` runs in its own process. What only the server can do (end
-- the account's sessions, tell its contacts, clean its pubsub state held in memory) is
-- requested here; the server polls this table, acts and deletes the row. A removal also
-- deletes the credentials at once, so nobody logs in meanwhile, and keeps the account
-- row, so the name cannot be registered again before the removal is complete.
-- Same dialect rules as 0001.

CREATE TABLE account_changes (
    username     TEXT   NOT NULL PRIMARY KEY REFERENCES accounts (username) ON DELETE CASCADE,
    kind         TEXT   NOT NULL CHECK (kind IN ('removed', 'password')),
    requested_at BIGINT NOT NULL
);
