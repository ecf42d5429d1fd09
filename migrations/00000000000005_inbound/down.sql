DROP TABLE waba_updates;
DROP TABLE templates;
DROP INDEX orphan_statuses_received_idx;
DROP INDEX orphan_statuses_key;
DROP INDEX inbound_webhooks_problems_idx;
ALTER TABLE inbound_webhooks DROP COLUMN lease_token;
