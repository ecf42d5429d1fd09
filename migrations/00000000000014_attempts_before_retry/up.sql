-- A manual retry gives a failed message a fresh attempt budget. It used to
-- reset `attempts`, so the timeline numbered the attempts after a retry
-- from 1 again, beside the earlier ones. `attempts` now counts every
-- attempt; this is where the current budget starts. (A constant default:
-- no table rewrite.)
ALTER TABLE messages ADD COLUMN attempts_before_retry integer NOT NULL DEFAULT 0;
