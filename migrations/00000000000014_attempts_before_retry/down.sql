ALTER TABLE messages DROP COLUMN attempts_before_retry;
