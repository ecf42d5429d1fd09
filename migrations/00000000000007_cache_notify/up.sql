-- Every instance keeps API keys and sending phones in memory and drops them
-- when this fires (see src/store/cache.rs). A statement trigger, so no write
-- path can forget it; NOTIFYs of one transaction are delivered once, at commit.
CREATE FUNCTION wagate_cache_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('wagate_cache', TG_TABLE_NAME);
    RETURN NULL;
END
$$;

-- Recording a key's use (last_used_at) changes nothing cached.
CREATE TRIGGER api_keys_changed
    AFTER INSERT OR DELETE OR UPDATE OF org_id, key_hash, revoked_at ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION wagate_cache_changed();
CREATE TRIGGER wabas_changed
    AFTER INSERT OR UPDATE OR DELETE ON wabas
    FOR EACH STATEMENT EXECUTE FUNCTION wagate_cache_changed();
CREATE TRIGGER phone_numbers_changed
    AFTER INSERT OR UPDATE OR DELETE ON phone_numbers
    FOR EACH STATEMENT EXECUTE FUNCTION wagate_cache_changed();
