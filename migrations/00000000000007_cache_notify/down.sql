DROP TRIGGER phone_numbers_changed ON phone_numbers;
DROP TRIGGER wabas_changed ON wabas;
DROP TRIGGER api_keys_changed ON api_keys;
DROP FUNCTION wagate_cache_changed();
