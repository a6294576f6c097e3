-- hydrant schema, version 4: items found by publisher through an index.
--
-- A MAM query `with` a JID (XEP-0313 4.1.1) filtered a node's items row by row on the
-- publisher's text, under the service's lock: up to `max_items_cap` rows read for a
-- page that may hold one item. The bare JID gets its own column so that a bare `with`
-- (which matches every resource) and a full one both walk this index, in seq order.
-- Same dialect rules as 0001; INSTR is STRPOS in PostgreSQL. A JID's first '/' ends its
-- bare part (RFC 7622 3.1: neither the localpart nor the domainpart holds one).

ALTER TABLE pubsub_items ADD COLUMN publisher_bare TEXT NOT NULL DEFAULT '';
UPDATE pubsub_items SET publisher_bare = CASE
    WHEN INSTR(publisher, '/') > 0 THEN SUBSTR(publisher, 1, INSTR(publisher, '/') - 1)
    ELSE publisher
END;
CREATE INDEX pubsub_items_by_publisher ON pubsub_items (service, node, publisher_bare, seq);
