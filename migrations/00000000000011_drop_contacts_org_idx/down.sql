CREATE INDEX contacts_org_idx ON contacts (org_id);
