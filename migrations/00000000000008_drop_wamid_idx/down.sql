CREATE INDEX messages_wamid_idx ON messages (wamid) WHERE wamid IS NOT NULL;
