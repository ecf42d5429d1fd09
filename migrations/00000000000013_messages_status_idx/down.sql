DROP INDEX CONCURRENTLY IF EXISTS messages_org_status_idx;
