-- Listing an organization's messages by a status they pass through or end
-- in (what is waiting, what failed and wants a retry) read the
-- organization's whole index in page order, filtering as it went: 2.4 s on
-- a million messages for a status none had, and as long to count them.
-- Delivered and read messages, the bulk of any history, are left out: they
-- are found quickly in page order, and leaving them out spares the index an
-- entry at each of their status changes. Built concurrently (outside a
-- transaction), so sends go on while it builds over a large table; a build
-- cut short leaves an invalid index that stops the next start, to be dropped.
CREATE INDEX CONCURRENTLY messages_org_status_idx
    ON messages (org_id, status, created_at DESC, id DESC)
    WHERE status IN ('queued', 'scheduled', 'processing', 'retrying', 'sent', 'failed');
