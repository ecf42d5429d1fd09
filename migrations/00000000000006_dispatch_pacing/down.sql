CREATE INDEX messages_due_idx ON messages (next_attempt_at) WHERE status IN ('queued', 'scheduled', 'retrying');
DROP INDEX messages_phone_due_idx;
ALTER TABLE phone_numbers ADD COLUMN pacing_tat timestamptz NOT NULL DEFAULT now();
UPDATE phone_numbers p SET pacing_tat = pp.tat FROM phone_pacing pp WHERE pp.phone_id = p.id;
DROP TABLE phone_pacing;
