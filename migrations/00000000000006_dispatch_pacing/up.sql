-- Per-phone pacing moves off phone_numbers into a row of its own. Every
-- accepted send checks its phone row (foreign keys take FOR KEY SHARE); the
-- dispatcher updated that same row ten times a second, so every check had to
-- walk fresh row versions and multixacts, and a claim's lock stalled inserts.
CREATE TABLE phone_pacing (
    phone_id uuid PRIMARY KEY REFERENCES phone_numbers (id) ON DELETE CASCADE,
    -- GCRA theoretical arrival time, shared by every instance.
    tat      timestamptz NOT NULL
);
INSERT INTO phone_pacing (phone_id, tat) SELECT id, pacing_tat FROM phone_numbers;
ALTER TABLE phone_numbers DROP COLUMN pacing_tat;

-- Due messages by phone, in send order: the claim reads one phone's due
-- messages, and "which phones have due messages" becomes one probe per phone.
CREATE INDEX messages_phone_due_idx ON messages (phone_id, next_attempt_at, id)
    WHERE status IN ('queued', 'scheduled', 'retrying');
DROP INDEX messages_due_idx;
