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

-- One function for every cascade: its arguments name (child table, column
-- holding the deleted row's id) pairs, deleted in that order.
CREATE FUNCTION wagate_cascade_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 0 .. TG_NARGS - 1 BY 2 LOOP
        EXECUTE format('DELETE FROM %I t USING gone g WHERE t.%I = g.id',
                       TG_ARGV[i], TG_ARGV[i + 1]);
    END LOOP;
    RETURN NULL;
END $$;
CREATE TRIGGER phone_numbers_cascade AFTER DELETE ON phone_numbers
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
    EXECUTE FUNCTION wagate_cascade_delete('messages', 'phone_id',
        'conversations', 'phone_id', 'contacts', 'phone_id');
CREATE TRIGGER contacts_cascade AFTER DELETE ON contacts
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
    EXECUTE FUNCTION wagate_cascade_delete('conversations', 'contact_id');
CREATE TRIGGER messages_cascade AFTER DELETE ON messages
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
    EXECUTE FUNCTION wagate_cascade_delete('message_events', 'message_id');
