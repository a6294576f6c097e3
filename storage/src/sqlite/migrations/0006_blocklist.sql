-- hydrant schema, version 6: XEP-0191 blocklists.
--
-- One row per blocked JID of an account, as the user gave it after normalisation (a
-- full JID, bare JID, domain/resource or domain: XEP-0191 6 matches each differently,
-- so the form is kept as written). Deleted with the account by cascade, like its roster.
-- Same dialect rules as 0001 (COLLATE "C" on `jid` in PostgreSQL for bytewise order).

CREATE TABLE blocklist (
    username   TEXT   NOT NULL REFERENCES accounts (username) ON DELETE CASCADE,
    jid        TEXT   NOT NULL,
    blocked_at BIGINT NOT NULL,
    PRIMARY KEY (username, jid)
);
