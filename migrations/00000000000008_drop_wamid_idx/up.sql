-- Every wamid lookup names the phone too (statuses carry phone_number_id),
-- so messages_wamid_key (phone_id, wamid) serves them all; the wamid-only
-- index only cost a write per inbound message and per sent message.
DROP INDEX messages_wamid_idx;
