-- No query reads contacts by organization alone: they are found in their
-- phone's inbox (phone_id, …), and deleting an organization reaches them
-- through its phones (migration 10). The index only cost every new contact
-- one more entry, on the send path. A contacts listing per organization will
-- want its own index, ordered for its pages.
DROP INDEX contacts_org_idx;
