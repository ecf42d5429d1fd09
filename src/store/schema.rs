//! Diesel table definitions, kept by hand in step with `migrations/`.
diesel::table! {
    organizations (id) {
        id -> Uuid,
        name -> Text,
        plan -> Text,
        onboarding -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        org_id -> Uuid,
        email -> Text,
        name -> Text,
        role -> Text,
        password_hash -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Uuid,
        org_id -> Uuid,
        name -> Text,
        prefix -> Text,
        key_hash -> Bytea,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        last_used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    usage_counters (org_id, period) {
        org_id -> Uuid,
        period -> Date,
        messages -> Int8,
    }
}

diesel::joinable!(users -> organizations (org_id));
diesel::joinable!(api_keys -> organizations (org_id));
diesel::joinable!(usage_counters -> organizations (org_id));

diesel::allow_tables_to_appear_in_same_query!(organizations, users, api_keys, usage_counters);
