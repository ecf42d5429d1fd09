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

diesel::joinable!(users -> organizations (org_id));
diesel::joinable!(api_keys -> organizations (org_id));

diesel::table! {
    wabas (id) {
        id -> Uuid,
        org_id -> Uuid,
        meta_waba_id -> Nullable<Text>,
        name -> Nullable<Text>,
        source -> Text,
        access_token_enc -> Nullable<Bytea>,
        token_last4 -> Nullable<Text>,
        verified_at -> Nullable<Timestamptz>,
        restrictions -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    phone_numbers (id) {
        id -> Uuid,
        org_id -> Uuid,
        waba_id -> Uuid,
        meta_phone_number_id -> Text,
        display_phone_number -> Nullable<Text>,
        verified_name -> Nullable<Text>,
        is_default -> Bool,
        metadata -> Jsonb,
        status -> Nullable<Text>,
        is_registered -> Bool,
        quality_rating -> Nullable<Text>,
        throughput_level -> Nullable<Text>,
        messaging_limit -> Nullable<Text>,
        name_status -> Nullable<Text>,
        code_verification_status -> Nullable<Text>,
        health_status -> Nullable<Jsonb>,
        app_subscribed -> Nullable<Bool>,
        token_valid -> Nullable<Bool>,
        last_synced_at -> Nullable<Timestamptz>,
        last_sync_error -> Nullable<Text>,
        throughput_mps -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    jobs (id) {
        id -> Int8,
        org_id -> Nullable<Uuid>,
        kind -> Text,
        payload -> Jsonb,
        unique_key -> Nullable<Text>,
        run_at -> Timestamptz,
        attempts -> Int4,
        max_attempts -> Int4,
        locked_until -> Nullable<Timestamptz>,
        lease_token -> Nullable<Uuid>,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(wabas -> organizations (org_id));
diesel::joinable!(phone_numbers -> wabas (waba_id));
// One list of every table (diesel needs them in a single invocation).
diesel::allow_tables_to_appear_in_same_query!(
    templates,
    waba_updates,
    organizations,
    users,
    api_keys,
    wabas,
    phone_numbers,
    jobs,
    contacts,
    conversations,
    messages,
    message_events,
    idempotency_keys,
    inbound_webhooks,
    orphan_statuses,
    pair_pacing,
    phone_pacing,
    webhook_endpoints,
    webhook_old_secrets,
    webhook_events,
    webhook_deliveries,
    webhook_attempts,
);

diesel::table! {
    contacts (id) {
        id -> Uuid,
        org_id -> Uuid,
        phone_id -> Uuid,
        identifier -> Text,
        identifier_type -> Text,
        wa_id -> Nullable<Text>,
        bsuid -> Nullable<Text>,
        parent_bsuid -> Nullable<Text>,
        username -> Nullable<Text>,
        profile_name -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    conversations (id) {
        id -> Uuid,
        org_id -> Uuid,
        phone_id -> Uuid,
        contact_id -> Uuid,
        last_message_at -> Nullable<Timestamptz>,
        last_inbound_at -> Nullable<Timestamptz>,
        unread_count -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    messages (id) {
        id -> Uuid,
        org_id -> Uuid,
        phone_id -> Uuid,
        conversation_id -> Nullable<Uuid>,
        contact_id -> Nullable<Uuid>,
        direction -> Text,
        #[sql_name = "type"]
        kind -> Text,
        content -> Jsonb,
        payload -> Jsonb,
        status -> Text,
        recipient -> Nullable<Text>,
        wamid -> Nullable<Text>,
        batch_id -> Nullable<Uuid>,
        send_at -> Nullable<Timestamptz>,
        next_attempt_at -> Nullable<Timestamptz>,
        attempts -> Int4,
        lease_until -> Nullable<Timestamptz>,
        lease_token -> Nullable<Uuid>,
        unknown_since -> Nullable<Timestamptz>,
        unknown_reason -> Nullable<Text>,
        error_code -> Nullable<Int8>,
        error_title -> Nullable<Text>,
        error_details -> Nullable<Text>,
        error_message -> Nullable<Text>,
        pricing -> Nullable<Jsonb>,
        warnings -> Jsonb,
        meta_timestamp -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        attempts_before_retry -> Int4,
    }
}

diesel::table! {
    message_events (id) {
        id -> Int8,
        org_id -> Uuid,
        message_id -> Uuid,
        status -> Text,
        at -> Timestamptz,
        attempt -> Nullable<Int4>,
        error_code -> Nullable<Int8>,
        error_title -> Nullable<Text>,
        error_details -> Nullable<Text>,
        error_message -> Nullable<Text>,
        pricing -> Nullable<Jsonb>,
        source -> Text,
        note -> Nullable<Text>,
    }
}

diesel::table! {
    idempotency_keys (org_id, key) {
        org_id -> Uuid,
        key -> Text,
        rpc -> Text,
        fingerprint -> Bytea,
        response -> Bytea,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    inbound_webhooks (id) {
        id -> Int8,
        received_at -> Timestamptz,
        body -> Bytea,
        state -> Text,
        attempts -> Int4,
        locked_until -> Nullable<Timestamptz>,
        processed_at -> Nullable<Timestamptz>,
        last_error -> Nullable<Text>,
        unrouted_phone_ids -> Nullable<Array<Text>>,
        lease_token -> Nullable<Uuid>,
    }
}

diesel::table! {
    orphan_statuses (id) {
        id -> Int8,
        meta_phone_number_id -> Text,
        wamid -> Text,
        status -> Jsonb,
        received_at -> Timestamptz,
    }
}

diesel::table! {
    phone_pacing (phone_id) {
        phone_id -> Uuid,
        tat -> Timestamptz,
    }
}

diesel::table! {
    pair_pacing (phone_id, recipient) {
        phone_id -> Uuid,
        recipient -> Text,
        tat -> Timestamptz,
    }
}

diesel::joinable!(contacts -> phone_numbers (phone_id));
diesel::joinable!(conversations -> contacts (contact_id));
diesel::joinable!(messages -> contacts (contact_id));
diesel::joinable!(messages -> conversations (conversation_id));
diesel::joinable!(message_events -> messages (message_id));

diesel::table! {
    templates (id) {
        id -> Uuid,
        org_id -> Uuid,
        waba_id -> Uuid,
        meta_template_id -> Nullable<Text>,
        name -> Text,
        language -> Text,
        status -> Nullable<Text>,
        category -> Nullable<Text>,
        previous_category -> Nullable<Text>,
        quality_score -> Nullable<Text>,
        reason -> Nullable<Text>,
        status_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    waba_updates (id) {
        id -> Uuid,
        org_id -> Uuid,
        waba_id -> Uuid,
        phone_id -> Nullable<Uuid>,
        field -> Text,
        event -> Nullable<Text>,
        value -> Jsonb,
        occurred_at -> Timestamptz,
        received_at -> Timestamptz,
        dedupe_key -> Text,
    }
}

diesel::joinable!(templates -> wabas (waba_id));
diesel::joinable!(waba_updates -> wabas (waba_id));

diesel::table! {
    webhook_endpoints (id) {
        id -> Uuid,
        org_id -> Uuid,
        waba_id -> Nullable<Uuid>,
        kind -> Text,
        url -> Text,
        description -> Nullable<Text>,
        events -> Array<Text>,
        is_active -> Bool,
        secret_enc -> Bytea,
        disabled_reason -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    webhook_old_secrets (id) {
        id -> Int8,
        endpoint_id -> Uuid,
        secret_enc -> Bytea,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    webhook_events (id) {
        id -> Uuid,
        org_id -> Uuid,
        waba_id -> Nullable<Uuid>,
        event -> Text,
        data -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Uuid,
        org_id -> Uuid,
        endpoint_id -> Uuid,
        event_id -> Uuid,
        event -> Text,
        trigger -> Text,
        status -> Text,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        lease_token -> Nullable<Uuid>,
        last_status_code -> Nullable<Int4>,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        completed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    webhook_attempts (id) {
        id -> Uuid,
        org_id -> Uuid,
        endpoint_id -> Uuid,
        delivery_id -> Uuid,
        event_id -> Uuid,
        event -> Text,
        trigger -> Text,
        attempt -> Int4,
        url -> Text,
        status_code -> Nullable<Int4>,
        duration_ms -> Int4,
        response -> Nullable<Text>,
        error -> Nullable<Text>,
        outcome -> Text,
        next_attempt_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(webhook_endpoints -> organizations (org_id));
diesel::joinable!(webhook_old_secrets -> webhook_endpoints (endpoint_id));
diesel::joinable!(webhook_deliveries -> webhook_endpoints (endpoint_id));
diesel::joinable!(webhook_deliveries -> webhook_events (event_id));
diesel::joinable!(webhook_attempts -> webhook_deliveries (delivery_id));
