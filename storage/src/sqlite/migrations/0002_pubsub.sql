-- hydrant schema, version 2: pubsub (XEP-0060) and PEP (XEP-0163) nodes, their
-- configuration, affiliations, subscriptions and items.
--
-- Same dialect rules as 0001 (BLOB -> BYTEA in PostgreSQL; COLLATE "C" for bytewise
-- order). One set of tables holds every service: `service` is the service's address
-- (`pubsub.example.com`, or for PEP the account's bare JID `alice@example.com`), and
-- every key starts with it, so one service's rows are one index range.
--
-- Millisecond timestamps and seqs are u64 in the code and BIGINT here; the store
-- refuses values above 2^63-1 rather than wrap them.
--
-- Node configuration is one typed column per `pubsub#node_config` field rather than a
-- serialised blob (a data form, JSON): the values are checked by the database (CHECK on
-- every enumeration), readable and fixable with plain SQL by an operator or the
-- PostgreSQL backend, and there is no second serialisation format to version. The
-- XEP-0004 form in particular is no storage format: parsing it depends on the service's
-- max_items cap (a count at or above the cap reads back as `max`), so it is lossy. The
-- price of columns is a migration per new field (ALTER TABLE ... ADD COLUMN ... DEFAULT,
-- which both databases accept), which is the mechanism we have anyway.

CREATE TABLE pubsub_nodes (
    service    TEXT   NOT NULL,
    node       TEXT   NOT NULL,
    creator    TEXT   NOT NULL,
    created_ms BIGINT NOT NULL,
    -- The highest item seq ever assigned in this node. Kept here, not derived from
    -- MAX(seq) of the items, because items are trimmed, retracted and purged while seqs
    -- must never be reused (RSM/MAM cursors are seqs).
    last_seq   BIGINT NOT NULL DEFAULT 0,
    -- pubsub#node_config
    title                    TEXT    NOT NULL,
    description              TEXT    NOT NULL,
    payload_type             TEXT,
    access_model             TEXT    NOT NULL
        CHECK (access_model IN ('open', 'presence', 'roster', 'whitelist', 'authorize')),
    publish_model            TEXT    NOT NULL
        CHECK (publish_model IN ('publishers', 'subscribers', 'open')),
    -- NULL is `max` (the service's cap, which may change between runs).
    max_items                BIGINT  CHECK (max_items >= 0),
    persist_items            BOOLEAN NOT NULL,
    deliver_payloads         BOOLEAN NOT NULL,
    deliver_notifications    BOOLEAN NOT NULL,
    notify_retract           BOOLEAN NOT NULL,
    notify_delete            BOOLEAN NOT NULL,
    notify_config            BOOLEAN NOT NULL,
    subscribe                BOOLEAN NOT NULL,
    send_last_published_item TEXT    NOT NULL
        CHECK (send_last_published_item IN ('never', 'on_sub', 'on_sub_and_presence')),
    presence_based_delivery  BOOLEAN NOT NULL,
    notification_type        TEXT    NOT NULL
        CHECK (notification_type IN ('normal', 'headline')),
    PRIMARY KEY (service, node)
);

-- pubsub#roster_groups_allowed, in the order configured.
CREATE TABLE pubsub_roster_groups (
    service    TEXT   NOT NULL,
    node       TEXT   NOT NULL,
    position   BIGINT NOT NULL,
    group_name TEXT   NOT NULL,
    PRIMARY KEY (service, node, position),
    FOREIGN KEY (service, node) REFERENCES pubsub_nodes (service, node) ON DELETE CASCADE
);

-- Explicit affiliations of bare JIDs; `none` is the absence of a row.
CREATE TABLE pubsub_affiliations (
    service     TEXT NOT NULL,
    node        TEXT NOT NULL,
    jid         TEXT NOT NULL,
    affiliation TEXT NOT NULL
        CHECK (affiliation IN ('owner', 'publisher', 'publish-only', 'member', 'outcast')),
    PRIMARY KEY (service, node, jid),
    FOREIGN KEY (service, node) REFERENCES pubsub_nodes (service, node) ON DELETE CASCADE
);

-- One row per subscription (a JID may hold several, told apart by subid). `position`
-- keeps the order subscriptions were made in (a replaced one keeps its place), which is
-- the order the service lists them and builds its subscriber snapshot.
CREATE TABLE pubsub_subscriptions (
    service     TEXT    NOT NULL,
    node        TEXT    NOT NULL,
    subid       TEXT    NOT NULL,
    position    BIGINT  NOT NULL,
    jid         TEXT    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('pending', 'unconfigured', 'subscribed')),
    -- pubsub#subscribe_options
    deliver     BOOLEAN NOT NULL,
    -- pubsub#show-values as space-separated tokens (away chat dnd online xa), in order;
    -- empty means any availability. The tokens are a closed set without spaces.
    show_values TEXT    NOT NULL,
    PRIMARY KEY (service, node, subid),
    FOREIGN KEY (service, node) REFERENCES pubsub_nodes (service, node) ON DELETE CASCADE
);

-- Published items. The payload is the element serialised by hydrant-proto with every
-- namespace declared on it (standalone XML, UTF-8); NULL for an item without payload.
CREATE TABLE pubsub_items (
    service      TEXT   NOT NULL,
    node         TEXT   NOT NULL,
    item_id      TEXT   NOT NULL,
    -- Per-node order: assigned by the service, strictly increasing, never reused.
    seq          BIGINT NOT NULL,
    published_ms BIGINT NOT NULL,
    publisher    TEXT   NOT NULL,
    payload      BLOB,
    PRIMARY KEY (service, node, item_id),
    FOREIGN KEY (service, node) REFERENCES pubsub_nodes (service, node) ON DELETE CASCADE
);

-- Ordered reads (newest first, RSM pages, MAM by seq) and the trim to max_items walk
-- this index; UNIQUE also catches a service handing out one seq twice.
CREATE UNIQUE INDEX pubsub_items_by_seq ON pubsub_items (service, node, seq);
