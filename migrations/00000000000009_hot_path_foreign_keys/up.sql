-- Foreign keys on the rows every send and every inbound message writes cost
-- a check per row, each taking a KEY SHARE lock (and a WAL record) on the
-- parent row; together they were about half the cost of inserting a message.
--
-- Kept: the keys that make deleting a phone number delete what belongs to it
-- (phone_id -> phone_numbers ON DELETE CASCADE, which organizations cascade
-- to), and message_events -> messages.
--
-- Dropped:
-- * org_id on messages, contacts and conversations: they reach their
--   organization through their phone, so deleting one still deletes them.
-- * messages.contact_id and messages.conversation_id: the store writes them
--   only with ids it has just read or written in the same transaction, and
--   the one place that deletes contacts or conversations (merging two
--   contacts when Meta reveals they are one person) moves the messages
--   first. Whatever deletes contacts or conversations later must do the same.
ALTER TABLE messages DROP CONSTRAINT messages_org_id_fkey;
ALTER TABLE messages DROP CONSTRAINT messages_contact_id_fkey;
ALTER TABLE messages DROP CONSTRAINT messages_conversation_id_fkey;
ALTER TABLE contacts DROP CONSTRAINT contacts_org_id_fkey;
ALTER TABLE conversations DROP CONSTRAINT conversations_org_id_fkey;
