-- hydrant schema, version 5: a node's subscriptions by position through an index.
--
-- A new subscription takes the next position of its node, COALESCE(MAX(position), 0) + 1.
-- The primary key is (service, node, subid), so that MAX read every subscription of the
-- node: 10,000 clients subscribing to one node made 50 million row reads, inside the
-- write transaction every other pubsub write waits for. With this index MAX is one
-- lookup at the end of the node's range (and loading a node's subscriptions in order
-- walks it too). Same dialect rules as 0001.

CREATE INDEX pubsub_subscriptions_by_position ON pubsub_subscriptions (service, node, position);
