DROP TABLE pair_pacing;
ALTER TABLE phone_numbers DROP COLUMN pacing_tat;
DROP TABLE orphan_statuses;
DROP TABLE inbound_webhooks;
DROP TABLE idempotency_keys;
DROP TABLE message_events;
DROP TABLE messages;
DROP TABLE conversations;
DROP TABLE contacts;
