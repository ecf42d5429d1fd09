-- Messages, contacts and conversations each reach their organization through
-- their phone (phone_id -> phone_numbers -> organizations, both ON DELETE
-- CASCADE), so deleting an organization still deletes them. The direct
-- org_id foreign keys only cost a check per inserted row, each taking a
-- KEY SHARE lock on the one organization row that every concurrent writer
-- of that organization locks too.
ALTER TABLE messages DROP CONSTRAINT messages_org_id_fkey;
ALTER TABLE contacts DROP CONSTRAINT contacts_org_id_fkey;
ALTER TABLE conversations DROP CONSTRAINT conversations_org_id_fkey;
