-- hydrant schema, version 8: hydrant's `x-hydrant#urgent` subscription option (a node
-- whose notifications go to an XEP-0352-inactive client at once). Existing
-- subscriptions are not urgent. Same dialect rules as 0001 (PostgreSQL accepts this
-- ALTER TABLE as written).

ALTER TABLE pubsub_subscriptions ADD COLUMN urgent BOOLEAN NOT NULL DEFAULT FALSE;
