-- hydrant schema, version 1: accounts, SCRAM credentials, rosters, pending inbound
-- subscription requests, offline messages.
--
-- Written for SQLite and PostgreSQL alike. The only spelling that differs:
--   BLOB  -> BYTEA in PostgreSQL (opaque bytes: SCRAM keys, serialised stanzas).
-- Everything else is the common subset: TEXT, BIGINT, BOOLEAN, composite primary keys,
-- foreign keys with ON DELETE CASCADE (SQLite enforces them only with
-- PRAGMA foreign_keys = ON, which every hydrant connection sets). Sequence numbers are
-- computed by the inserting statement rather than by SQLite's rowid or PostgreSQL's
-- identity columns, so no auto-increment syntax is needed.
-- Text comparisons and ORDER BY must be bytewise: SQLite's default BINARY collation is;
-- PostgreSQL needs COLLATE "C" on these columns (or on the ORDER BY).
-- Timestamps are Unix seconds (BIGINT), not a TIMESTAMP type whose meaning differs.

CREATE TABLE accounts (
    username       TEXT   NOT NULL PRIMARY KEY,
    created_at     BIGINT NOT NULL,
    -- XEP-0237 roster version: bumped in the same transaction as every roster change.
    roster_version BIGINT NOT NULL DEFAULT 0
);

-- One row per SCRAM hash, so adding SCRAM-SHA-512 later adds rows, not columns.
CREATE TABLE account_scram (
    username   TEXT   NOT NULL REFERENCES accounts (username) ON DELETE CASCADE,
    hash       TEXT   NOT NULL CHECK (hash IN ('SHA-1', 'SHA-256')),
    salt       BLOB   NOT NULL,
    iterations BIGINT NOT NULL,
    stored_key BLOB   NOT NULL,
    server_key BLOB   NOT NULL,
    PRIMARY KEY (username, hash)
);

CREATE TABLE roster_items (
    username     TEXT    NOT NULL REFERENCES accounts (username) ON DELETE CASCADE,
    jid          TEXT    NOT NULL,
    name         TEXT,
    subscription TEXT    NOT NULL CHECK (subscription IN ('none', 'to', 'from', 'both')),
    ask_out      BOOLEAN NOT NULL,
    approved     BOOLEAN NOT NULL,
    PRIMARY KEY (username, jid)
);

CREATE TABLE roster_groups (
    username   TEXT NOT NULL,
    jid        TEXT NOT NULL,
    group_name TEXT NOT NULL,
    PRIMARY KEY (username, jid, group_name),
    FOREIGN KEY (username, jid) REFERENCES roster_items (username, jid) ON DELETE CASCADE
);

-- RFC 6121 3.1.3: kept until the user approves or denies, whether or not the contact
-- is in the roster, hence keyed by account rather than by roster item.
CREATE TABLE pending_subscriptions (
    username    TEXT   NOT NULL REFERENCES accounts (username) ON DELETE CASCADE,
    from_jid    TEXT   NOT NULL,
    stanza      BLOB   NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (username, from_jid)
);

-- seq orders one user's queue (arrival order); it restarts once the queue is emptied,
-- which is harmless because only the order among queued rows matters.
CREATE TABLE offline_messages (
    username  TEXT   NOT NULL REFERENCES accounts (username) ON DELETE CASCADE,
    seq       BIGINT NOT NULL,
    stanza    BLOB   NOT NULL,
    stored_at BIGINT NOT NULL,
    PRIMARY KEY (username, seq)
);
