-- The last foreign keys on the rows every send and every inbound message
-- writes (contacts, conversations, messages and timeline entries). Each one
-- ran a check per inserted row that took a KEY SHARE lock on the parent, the
-- same phone row for every concurrent writer; in the send benchmark they were
-- about a seventh of PostgreSQL's CPU.
--
-- What they were kept for (migration 9) stays: deleting a phone number, or
-- the organization that owns it, deletes its contacts, conversations,
-- messages and timelines, and deleting a contact or a message deletes what
-- hangs off it. Statement-level triggers do that now, at the cost of the
-- delete instead of every insert.
--
-- Rule for the code (as in migration 9): the store writes phone, contact,
-- conversation and message ids only when it has just read or written them in
-- the same transaction.
-- Migration 9 landed twice under one version: first dropping only the org_id
-- keys, then also messages.contact_id and messages.conversation_id. A
-- database that ran the first form never runs the second, so those two are
-- dropped here too (already gone on the others).
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_contact_id_fkey;
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_conversation_id_fkey;
ALTER TABLE contacts DROP CONSTRAINT contacts_phone_id_fkey;
ALTER TABLE conversations DROP CONSTRAINT conversations_phone_id_fkey;
ALTER TABLE conversations DROP CONSTRAINT conversations_contact_id_fkey;
ALTER TABLE messages DROP CONSTRAINT messages_phone_id_fkey;
ALTER TABLE message_events DROP CONSTRAINT message_events_message_id_fkey;

CREATE FUNCTION wagate_phone_numbers_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM messages m USING gone g WHERE m.phone_id = g.id;
    DELETE FROM conversations v USING gone g WHERE v.phone_id = g.id;
    DELETE FROM contacts c USING gone g WHERE c.phone_id = g.id;
    RETURN NULL;
END $$;
CREATE TRIGGER phone_numbers_cascade AFTER DELETE ON phone_numbers
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
    EXECUTE FUNCTION wagate_phone_numbers_deleted();

CREATE FUNCTION wagate_contacts_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM conversations v USING gone g WHERE v.contact_id = g.id;
    RETURN NULL;
END $$;
CREATE TRIGGER contacts_cascade AFTER DELETE ON contacts
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
    EXECUTE FUNCTION wagate_contacts_deleted();

CREATE FUNCTION wagate_messages_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM message_events e USING gone g WHERE e.message_id = g.id;
    RETURN NULL;
END $$;
CREATE TRIGGER messages_cascade AFTER DELETE ON messages
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
    EXECUTE FUNCTION wagate_messages_deleted();
