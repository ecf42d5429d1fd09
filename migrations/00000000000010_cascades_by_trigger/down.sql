DROP TRIGGER messages_cascade ON messages;
DROP TRIGGER contacts_cascade ON contacts;
DROP TRIGGER phone_numbers_cascade ON phone_numbers;
DROP FUNCTION wagate_cascade_delete();
ALTER TABLE message_events ADD CONSTRAINT message_events_message_id_fkey
    FOREIGN KEY (message_id) REFERENCES messages (id) ON DELETE CASCADE;
ALTER TABLE messages ADD CONSTRAINT messages_phone_id_fkey
    FOREIGN KEY (phone_id) REFERENCES phone_numbers (id) ON DELETE CASCADE;
ALTER TABLE conversations ADD CONSTRAINT conversations_contact_id_fkey
    FOREIGN KEY (contact_id) REFERENCES contacts (id) ON DELETE CASCADE;
ALTER TABLE conversations ADD CONSTRAINT conversations_phone_id_fkey
    FOREIGN KEY (phone_id) REFERENCES phone_numbers (id) ON DELETE CASCADE;
ALTER TABLE contacts ADD CONSTRAINT contacts_phone_id_fkey
    FOREIGN KEY (phone_id) REFERENCES phone_numbers (id) ON DELETE CASCADE;
