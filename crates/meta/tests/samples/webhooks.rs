//! Every webhook sample parses into the typed payload (no raw fallback for
//! known fields), re-serialises identically, and every key it holds is
//! modelled by a typed field. Then key fields per kind of sample.
use serde_json::{Value, json};
use wagate_meta::json::modelled_only;
use wagate_meta::webhook::*;

use crate::common::{diff, fixture, fixtures};

/// This sample is an `interactive` message whose payload Meta could not
/// deliver: it has no `interactive` object and comes with value-level
/// error 131000, so its content is legitimately `Other`.
const PAYLOADLESS: &str = "pywa__message__interactive_message_with_err.json";

fn parse(name: &str) -> WebhookPayload {
    serde_json::from_value(fixture("webhooks", name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn assert_typed_content(name: &str, content: &MessageContent) {
    assert!(
        !content.is_other(),
        "{name}: message content fell back to Other: {content:?}"
    );
    match content {
        MessageContent::Interactive(InteractiveReply::Other(v)) => {
            panic!("{name}: interactive reply fell back to Other: {v}")
        }
        MessageContent::Edit(edit) => {
            let inner = edit
                .message
                .as_ref()
                .unwrap_or_else(|| panic!("{name}: edit without message"));
            assert_typed_content(name, &inner.content);
        }
        _ => {}
    }
}

#[test]
fn every_sample_parses_typed_and_round_trips() {
    let samples = fixtures("webhooks");
    assert!(
        samples.len() >= 90,
        "fixtures missing? found {}",
        samples.len()
    );
    for (name, raw) in samples {
        let payload: WebhookPayload =
            serde_json::from_value(raw.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));

        // Nothing lost on the way back.
        let back = serde_json::to_value(&payload).unwrap();
        assert_eq!(
            back,
            raw,
            "{name}: round trip differs: {:?}",
            diff(&raw, &back)
        );

        // Every key is a typed field, none hides in an `extra` map.
        let modelled = modelled_only(&payload).unwrap();
        assert_eq!(
            modelled,
            raw,
            "{name}: keys not modelled: {:?}",
            diff(&raw, &modelled)
        );

        // No known field fell back to raw JSON.
        let mut changes = 0;
        for change in payload.changes() {
            changes += 1;
            assert!(
                !change.value.is_other(),
                "{name}: field {} fell back to Other",
                change.field
            );
            let Some(value) = change.value.messages_value() else {
                continue;
            };
            assert!(
                change.phone_number_id().is_some(),
                "{name}: no phone_number_id"
            );
            for m in &value.messages {
                if name == PAYLOADLESS {
                    assert_eq!(m.content.kind(), Some("interactive"));
                    assert!(m.raw_payload().is_none());
                    assert_eq!(value.errors[0].code, 131000);
                } else {
                    assert_typed_content(&name, &m.content);
                }
            }
            for echo in &value.message_echoes {
                assert_typed_content(&name, &echo.content);
            }
        }
        assert!(changes > 0, "{name}: no changes");
    }
}

fn messages_value(p: &WebhookPayload) -> &MessagesValue {
    let (_, v) = p.messages_values().next().expect("a messages value");
    v
}

fn first_message(p: &WebhookPayload) -> (&MessagesValue, &Message) {
    let v = messages_value(p);
    (v, &v.messages[0])
}

#[test]
fn text_and_sender_identity() {
    let p = parse("metadocs__text_basic.json");
    assert_eq!(p.object, "whatsapp_business_account");
    let pairs: Vec<_> = p.messages_values().map(|(id, _)| id).collect();
    assert_eq!(pairs, ["106540352242922"]);
    let change = p.changes().next().unwrap();
    assert_eq!(
        (change.waba_id, change.field),
        ("102290129340398", "messages")
    );
    let (v, m) = first_message(&p);
    assert_eq!(m.timestamp_secs(), Some(1749416383));
    assert!(matches!(
        m.timestamp,
        Some(wagate_meta::json::IntOrString::Str(_))
    ));
    let MessageContent::Text(t) = &m.content else {
        panic!()
    };
    assert_eq!(t.body, "Does it come in another color?");
    let who = v.sender(m);
    assert_eq!(who.wa_id, Some("16505551234"));
    assert_eq!(who.profile_name, Some("Sheena Nelson"));
    assert_eq!(who.user_id, None);
}

#[test]
fn bsuid_user_without_phone() {
    let p = parse("metadocs__bsuid_incoming_text_username_no_phone.json");
    let (v, m) = first_message(&p);
    assert_eq!(m.from.as_deref(), Some(""));
    assert_eq!(m.from_phone(), None);
    assert_eq!(m.from_user_id(), Some("user.93737..."));
    assert_eq!(v.contacts[0].wa_id(), None);
    let who = v.sender(m);
    assert_eq!(who.wa_id, None);
    assert_eq!(who.user_id, Some("user.93737..."));
    assert_eq!(who.username, Some("@realsheenanelson"));
    assert_eq!(who.profile_name, Some("Sheena Nelson"));
    assert!(!who.is_anonymous());
}

#[test]
fn bsuid_fields_with_parent_ids() {
    let p = parse("pywa__button__quick_reply_without_context.json");
    let (v, m) = first_message(&p);
    let who = v.sender(m);
    assert_eq!(who.wa_id, Some("972987654321"));
    assert_eq!(who.user_id, Some("US.13491208655302741918"));
    assert_eq!(who.parent_user_id, Some("US.ENT.11815799212886844830"));
    let MessageContent::Button(b) = &m.content else {
        panic!()
    };
    assert_eq!(b.payload.as_deref(), Some("callback_data"));
    assert!(m.context.is_none());
}

#[test]
fn contact_lookup_does_not_misattribute() {
    // pywa's edit sample has a contact whose wa_id differs from `from`.
    let p = parse("pywa__edit__image.json");
    let (v, m) = first_message(&p);
    let who = v.sender(m);
    assert_eq!(who.wa_id, Some("16505551234"));
    assert_eq!(
        who.profile_name, None,
        "the only contact contradicts the sender"
    );
    let MessageContent::Edit(edit) = &m.content else {
        panic!()
    };
    assert!(edit.original_message_id.starts_with("wamid."));
    let inner = edit.message.as_ref().unwrap();
    assert_eq!(inner.context.as_ref().unwrap().id.as_deref(), Some("M0"));
    let media = inner.content.media().unwrap();
    assert_eq!(media.caption.as_deref(), Some("Updated image caption"));
}

#[test]
fn media_messages() {
    let p = parse("metadocs__audio.json");
    let (_, m) = first_message(&p);
    let MessageContent::Audio(a) = &m.content else {
        panic!()
    };
    assert_eq!(a.voice, Some(true));
    assert!(
        a.url
            .as_deref()
            .unwrap()
            .starts_with("https://lookaside.fbsbx.com/")
    );

    let p = parse("metadocs__document.json");
    let (_, m) = first_message(&p);
    let MessageContent::Document(d) = &m.content else {
        panic!()
    };
    assert_eq!(d.filename.as_deref(), Some("receipt.pdf"));
    assert_eq!(d.caption.as_deref(), Some("my receipt"));

    for (name, animated) in [
        ("pywa__message__animated_sticker.json", true),
        ("pywa__message__static_sticker.json", false),
    ] {
        let p = parse(name);
        let (_, m) = first_message(&p);
        let MessageContent::Sticker(s) = &m.content else {
            panic!()
        };
        assert_eq!(s.animated, Some(animated));
    }

    let p = parse("pywa__message__video.json");
    let (_, m) = first_message(&p);
    assert_eq!(m.context.as_ref().unwrap().forwarded, Some(true));
    assert_eq!(m.content.media().unwrap().id, "765756756");
}

#[test]
fn location_contacts_order() {
    let p = parse("metadocs__location.json");
    let (_, m) = first_message(&p);
    let MessageContent::Location(l) = &m.content else {
        panic!()
    };
    assert_eq!(l.latitude, 37.44221496582);
    assert_eq!(l.url.as_deref(), Some("https://philzcoffee.com/"));

    let p = parse("pywa__message__contacts.json");
    let (_, m) = first_message(&p);
    let MessageContent::Contacts(cards) = &m.content else {
        panic!()
    };
    assert_eq!(cards.len(), 3);
    assert_eq!(cards[1].name.formatted_name, "Monica");
    assert_eq!(cards[0].phones[0].kind.as_deref(), Some("CELL"));

    let p = parse("metadocs__order.json");
    let (_, m) = first_message(&p);
    let MessageContent::Order(o) = &m.content else {
        panic!()
    };
    assert_eq!(o.product_items.len(), 2);
    assert_eq!(
        o.product_items[0].item_price.as_ref().unwrap().as_i64(),
        Some(30)
    );
    assert_eq!(o.product_items[0].quantity, Some(2));
}

#[test]
fn interactive_replies() {
    let p = parse("pywa__button__button.json");
    let (_, m) = first_message(&p);
    let MessageContent::Interactive(InteractiveReply::ButtonReply(r)) = &m.content else {
        panic!()
    };
    assert_eq!(
        (r.id.as_str(), r.title.as_deref()),
        ("callback_data", Some("title"))
    );

    let p = parse("pywa__list_reply__description.json");
    let (_, m) = first_message(&p);
    let MessageContent::Interactive(InteractiveReply::ListReply(r)) = &m.content else {
        panic!()
    };
    assert_eq!(r.description.as_deref(), Some("description"));

    let p = parse("pywa__flow_nfm_reply__completion.json");
    let (_, m) = first_message(&p);
    let MessageContent::Interactive(InteractiveReply::NfmReply(r)) = &m.content else {
        panic!()
    };
    assert_eq!(r.name.as_deref(), Some("flow"));
    let resp = r.response().unwrap();
    assert_eq!(resp["flow_token"], "AQAAAAACS5FpgQ_cAAAAAD0QI3s.");
}

#[test]
fn reactions_and_unreactions() {
    for (name, removal) in [
        ("pywa__message__reaction.json", false),
        ("pywa__message__unreaction_empty.json", true),
        ("pywa__message__unreaction_no_emoji.json", true),
    ] {
        let p = parse(name);
        let (_, m) = first_message(&p);
        let MessageContent::Reaction(r) = &m.content else {
            panic!("{name}")
        };
        assert_eq!(r.message_id, "wamid.yzxyzx=");
        assert_eq!(r.is_removal(), removal, "{name}");
    }
}

#[test]
fn context_referral_and_referred_product() {
    let p = parse("metadocs__text_referred_product_context.json");
    let (_, m) = first_message(&p);
    let ctx = m.context.as_ref().unwrap();
    let product = ctx.referred_product.as_ref().unwrap();
    assert_eq!(product.product_retailer_id.as_deref(), Some("di9ozbzfi4"));

    let p = parse("metadocs__text_ctwa_referral.json");
    let (_, m) = first_message(&p);
    let r = m.referral.as_ref().unwrap();
    assert_eq!(r.source_type.as_deref(), Some("ad"));
    assert!(r.ctwa_clid.is_some());
    assert_eq!(
        r.welcome_message.as_ref().unwrap().text.as_deref(),
        Some("Hi there! Let us know how we can help!")
    );

    let p = parse("pywa__message__forwarded_many_times.json");
    let (_, m) = first_message(&p);
    assert_eq!(m.context.as_ref().unwrap().frequently_forwarded, Some(true));

    let p = parse("metadocs__group_text.json");
    let (_, m) = first_message(&p);
    assert!(m.group_id.is_some());
}

#[test]
fn system_messages() {
    let p = parse("metadocs__system_user_changed_number.json");
    let (v, m) = first_message(&p);
    assert!(v.contacts.is_empty());
    let MessageContent::System(s) = &m.content else {
        panic!()
    };
    assert_eq!(s.kind, Some(SystemKind::UserChangedNumber));
    assert_eq!(s.new_phone(), Some("12195555358"));

    let p = parse("pywa__system__identity_change.json");
    let (_, m) = first_message(&p);
    let MessageContent::System(s) = &m.content else {
        panic!()
    };
    assert_eq!(s.kind, Some(SystemKind::CustomerIdentityChanged));
    let identity = m.identity.as_ref().unwrap();
    assert_eq!(identity.acknowledged, Some(true));
    assert_eq!(identity.hash.as_deref(), Some("xyzxyz"));

    // 2026 BSUID change, shape from Meta's docs (no captured sample exists).
    let msg: Message = serde_json::from_value(json!({
        "from": "16505551234", "from_user_id": "US.1", "id": "wamid.X", "timestamp": "1750269342",
        "type": "system",
        "system": {"body": "User's id changed", "type": "user_changed_user_id",
                   "user_id": "US.2", "parent_user_id": "US.ENT.3"}
    }))
    .unwrap();
    let MessageContent::System(s) = &msg.content else {
        panic!()
    };
    assert_eq!(s.kind, Some(SystemKind::UserChangedUserId));
    assert_eq!(s.new_user_id(), Some("US.2"));
}

#[test]
fn unsupported_and_errors() {
    let p = parse("metadocs__unsupported.json");
    let (_, m) = first_message(&p);
    let MessageContent::Unsupported(Some(u)) = &m.content else {
        panic!()
    };
    assert_eq!(u.kind.as_deref(), Some("edit"));
    assert_eq!(m.errors[0].code, 131051);
    assert_eq!(
        m.errors[0].details(),
        Some("Message type is currently not supported.")
    );

    let p = parse("pywa__message__unsupported.json");
    let (_, m) = first_message(&p);
    assert!(matches!(m.content, MessageContent::Unsupported(None)));

    let p = parse("metadocs__errors_value_level.json");
    let v = messages_value(&p);
    assert!(v.messages.is_empty());
    assert_eq!(v.errors[0].code, 130429);
    assert_eq!(v.errors[0].class(), wagate_meta::ErrorClass::ThrottleNumber);
    assert!(v.errors[0].href.is_some());
}

#[test]
fn revoke_and_echoes() {
    let p = parse("pywa__revoke__revoke.json");
    let (_, m) = first_message(&p);
    let MessageContent::Revoke(r) = &m.content else {
        panic!()
    };
    assert_eq!(r.original_message_id, "<ORIGINAL_WHATSAPP_MESSAGE_ID>");

    let p = parse("pywa__smb_message_echoes__text.json");
    let change = p.changes().next().unwrap();
    assert!(matches!(change.value, ChangeValue::SmbMessageEchoes(_)));
    let v = messages_value(&p);
    let echo = &v.message_echoes[0];
    assert_eq!(echo.to_user_id(), Some("<BSUID>"));
    let to = v.echo_recipient(echo);
    assert_eq!(
        (to.wa_id, to.user_id),
        (Some("<WHATSAPP_USER_PHONE_NUMBER>"), Some("<BSUID>"))
    );
    assert_eq!(to.parent_user_id, Some("<PARENT_BSUID>"));
    assert_eq!(echo.to_parent_user_id.as_deref(), Some("<PARENT_BSUID>"));

    let p = parse("pywa__smb_message_echoes__edit.json");
    let echo = &messages_value(&p).message_echoes[0];
    let MessageContent::Edit(e) = &echo.content else {
        panic!()
    };
    let MessageContent::Text(t) = &e.message.as_ref().unwrap().content else {
        panic!()
    };
    assert_eq!(t.body, "Text was edited");

    let p = parse("pywa__smb_message_echoes__delete.json");
    let echo = &messages_value(&p).message_echoes[0];
    assert!(matches!(echo.content, MessageContent::Revoke(_)));
}

#[test]
fn statuses() {
    let p = parse("metadocs__status_sent_marketing_pmp.json");
    let v = messages_value(&p);
    let s = &v.statuses[0];
    assert_eq!(s.status, StatusKind::Sent);
    assert_eq!(s.recipient_phone(), Some("16505551234"));
    let pricing = s.pricing.as_ref().unwrap();
    assert_eq!(
        (pricing.pricing_model.as_deref(), pricing.kind.as_deref()),
        (Some("PMP"), Some("regular"))
    );
    let conv = s.conversation.as_ref().unwrap();
    assert_eq!(
        conv.origin.as_ref().unwrap().kind.as_deref(),
        Some("marketing")
    );
    assert_eq!(
        conv.expiration_timestamp.as_ref().unwrap().as_i64(),
        Some(1750116480)
    );

    let p = parse("metadocs__status_failed_131049.json");
    let s = &messages_value(&p).statuses[0];
    assert_eq!(s.status, StatusKind::Failed);
    assert_eq!(s.errors[0].code, 131049);
    assert_eq!(s.errors[0].class(), wagate_meta::ErrorClass::Policy);
    assert!(s.pricing.is_none());

    let p = parse("pywa__status__played.json");
    assert_eq!(messages_value(&p).statuses[0].status, StatusKind::Played);

    let p = parse("pywa__status__with_tracker.json");
    let s = &messages_value(&p).statuses[0];
    assert_eq!(s.biz_opaque_callback_data.as_deref(), Some("some data"));

    let p = parse("metadocs__bsuid_status_delivered_sent_to_bsuid_empty_wa_id.json");
    let v = messages_value(&p);
    let s = &v.statuses[0];
    assert_eq!(s.recipient_phone(), None);
    let who = v.status_recipient(s);
    assert_eq!(who.wa_id, None);
    assert_eq!(who.user_id.map(|u| u.starts_with("user.")), Some(true));
    assert_eq!(who.username, Some("@pablomorales"));

    let p = parse("pywa__status__group.json");
    let v = messages_value(&p);
    let s = &v.statuses[0];
    assert!(s.is_group());
    assert_eq!(s.recipient_phone(), None);
    let who = v.status_recipient(s);
    assert_eq!(who.wa_id, Some("<GROUP_PARTICIPANT_USER_PHONE_NUMBER>"));
    assert_eq!(who.user_id, Some("US.123456"));
    assert_eq!(who.parent_user_id, Some("<PARENT_BSUID>"));
    assert_eq!(who.username, Some("<USERNAME>"));
}

#[test]
fn parent_recipient_user_id_spellings() {
    for key in ["recipient_parent_user_id", "parent_recipient_user_id"] {
        let raw = json!({"id": "wamid.A", "status": "delivered", "timestamp": "1",
                         "recipient_id": "", "recipient_user_id": "US.1", key: "US.ENT.2"});
        let s: Status = serde_json::from_value(raw.clone()).unwrap();
        assert_eq!(s.recipient_parent_user_id(), Some("US.ENT.2"), "{key}");
        assert_eq!(serde_json::to_value(&s).unwrap(), raw, "{key} round trip");
    }
}

#[test]
fn template_and_account_fields() {
    let p = parse("pywa__template_status__rejected.json");
    let c = p.changes().next().unwrap();
    assert_eq!(c.time.and_then(|t| t.as_i64()), Some(1751247548));
    let ChangeValue::MessageTemplateStatusUpdate(u) = c.value else {
        panic!()
    };
    assert_eq!(u.event.as_deref(), Some("REJECTED"));
    assert_eq!(
        u.message_template_id.as_ref().unwrap().as_i64(),
        Some(1689556908129835)
    );
    assert!(u.rejection_info.as_ref().unwrap().recommendation.is_some());

    let p = parse("pywa__template_category__marketing.json");
    let ChangeValue::TemplateCategoryUpdate(u) = p.changes().next().unwrap().value else {
        panic!()
    };
    assert_eq!(u.new_category.as_deref(), Some("MARKETING"));

    let p = parse("pywa__template_quality__yellow.json");
    let ChangeValue::MessageTemplateQualityUpdate(u) = p.changes().next().unwrap().value else {
        panic!()
    };
    assert_eq!(u.new_quality_score.as_deref(), Some("YELLOW"));

    let p = parse("pywa__template_components__all.json");
    let ChangeValue::MessageTemplateComponentsUpdate(u) = p.changes().next().unwrap().value else {
        panic!()
    };
    assert_eq!(u.message_template_buttons.len(), 2);

    let p = parse("metadocs__phone_number_quality_update_throughput_upgrade.json");
    let ChangeValue::PhoneNumberQualityUpdate(u) = p.changes().next().unwrap().value else {
        panic!()
    };
    assert_eq!(u.event.as_deref(), Some("THROUGHPUT_UPGRADE"));
    assert_eq!(u.current_limit.as_deref(), Some("TIER_UNLIMITED"));

    let p = parse("metadocs__business_capability_update.json");
    let ChangeValue::BusinessCapabilityUpdate(u) = p.changes().next().unwrap().value else {
        panic!()
    };
    assert_eq!(
        u.max_phone_numbers_per_waba.as_ref().unwrap().as_i64(),
        Some(25)
    );

    let p = parse("pywa__account_update__account_restriction.json");
    let ChangeValue::AccountUpdate(u) = p.changes().next().unwrap().value else {
        panic!()
    };
    assert_eq!(u.restriction_info.len(), 2);

    let p = parse("pywa__account_update__partner_app_uninstalled.json");
    let ChangeValue::AccountUpdate(u) = p.changes().next().unwrap().value else {
        panic!()
    };
    assert_eq!(u.event.as_deref(), Some("PARTNER_APP_UNINSTALLED"));
    assert_eq!(
        u.waba_info.as_ref().unwrap().waba_id.as_deref(),
        Some("184943124712545")
    );

    let p = parse("pywa__account_update__account_disabled.json");
    let ChangeValue::AccountUpdate(u) = p.changes().next().unwrap().value else {
        panic!()
    };
    assert_eq!(
        u.ban_info.as_ref().unwrap().waba_ban_state.as_deref(),
        Some("REINSTATE")
    );

    // Template fields have no phone number.
    assert_eq!(p.messages_values().count(), 0);
}

#[test]
fn phone_number_name_update_value() {
    // No sample captured; shape from Meta's reference.
    let raw = json!({"field": "phone_number_name_update", "value": {
        "display_phone_number": "15550783881", "decision": "APPROVED",
        "requested_verified_name": "Lucky Shrub", "rejection_reason": "NONE"}});
    let change: Change = serde_json::from_value(raw.clone()).unwrap();
    let ChangeValue::PhoneNumberNameUpdate(u) = &change.value else {
        panic!()
    };
    assert_eq!(u.decision.as_deref(), Some("APPROVED"));
    assert_eq!(serde_json::to_value(&change).unwrap(), raw);
}

#[test]
fn user_preferences() {
    let p = parse("pywa__user_preferences__signup.json");
    let change = p.changes().next().unwrap();
    assert!(matches!(change.value, ChangeValue::UserPreferences(_)));
    let pref = &messages_value(&p).user_preferences[0];
    assert_eq!(pref.value.as_deref(), Some("signup"));
    assert_eq!(pref.signup_id.as_deref(), Some("13176843987434774"));
    assert!(matches!(
        pref.timestamp,
        Some(wagate_meta::json::IntOrString::Int(1731705721))
    ));
}

#[test]
fn user_id_update() {
    // Shape from 8x8's verbatim passthrough of Meta's 2026 payload.
    let raw = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
        "field": "user_id_update",
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                  "contacts": [{"profile": {"name": "Pablo"}, "wa_id": "16505551234", "user_id": "US.NEW"}],
                  "user_id_update": [{"wa_id": "16505551234", "detail": "User id for 16505551234 has been updated.",
                                      "user_id": {"previous": "US.OLD", "current": "US.NEW"},
                                      "parent_user_id": {"previous": "US.ENT.OLD", "current": "US.ENT.NEW"},
                                      "timestamp": 1750269342}]}}]}]});
    let p: WebhookPayload = serde_json::from_value(raw.clone()).unwrap();
    assert_eq!(serde_json::to_value(&p).unwrap(), raw);
    let (phone_id, v) = p.messages_values().next().unwrap();
    assert_eq!(phone_id, "106540352242922");
    let u = &v.user_id_update[0];
    assert_eq!(
        u.user_id.as_ref().unwrap().previous.as_deref(),
        Some("US.OLD")
    );
    assert_eq!(
        u.user_id.as_ref().unwrap().current.as_deref(),
        Some("US.NEW")
    );
}

#[test]
fn unknown_things_are_kept_not_rejected() {
    let raw = json!({"object": "whatsapp_business_account", "new_top": 1, "entry": [{"id": "1", "time": 5, "changes": [
        {"field": "calls", "value": {"calls": [{"id": "c1"}]}},
        {"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "1", "phone_number_id": "2"},
            "brand_new": true,
            "messages": [
                {"from": "3", "id": "wamid.P", "timestamp": "1", "type": "poll",
                 "poll": {"question": "?"}, "mystery": [1, 2]},
                {"from": "3", "id": "wamid.T", "timestamp": "1", "type": "text", "text": {"body": "hi", "rich": 1}},
                {"from": "3", "id": "wamid.I", "timestamp": "1", "type": "interactive",
                 "interactive": {"type": "call_permission_reply", "call_permission_reply": {"response": "accept"}}},
                {"from": "3", "id": "wamid.B", "timestamp": "1", "type": "image", "image": "not an object"},
                {"from": "3", "id": "wamid.W", "timestamp": "1", "type": "request_welcome"}
            ],
            "statuses": [{"id": "wamid.S", "status": "pending_review", "timestamp": "1", "recipient_id": "3"}]
        }},
        {"field": "account_update", "value": "unexpected string"}
    ]}]});
    let p: WebhookPayload = serde_json::from_value(raw.clone()).unwrap();
    assert_eq!(serde_json::to_value(&p).unwrap(), raw, "nothing lost");
    let changes: Vec<_> = p.changes().collect();
    assert!(matches!(changes[0].value, ChangeValue::Other(_)));
    assert!(matches!(
        changes[2].value,
        ChangeValue::Other(Value::String(_))
    ));
    let v = changes[1].value.messages_value().unwrap();
    assert_eq!(v.extra.get("brand_new"), Some(&json!(true)));

    let poll = &v.messages[0];
    assert_eq!(poll.content.kind(), Some("poll"));
    assert_eq!(poll.raw_payload(), Some(&json!({"question": "?"})));
    assert!(poll.extra.contains_key("mystery"));

    let MessageContent::Text(t) = &v.messages[1].content else {
        panic!()
    };
    assert_eq!(t.extra.get("rich"), Some(&json!(1)));

    let MessageContent::Interactive(InteractiveReply::Other(o)) = &v.messages[2].content else {
        panic!()
    };
    assert_eq!(o["type"], "call_permission_reply");

    let bad = &v.messages[3];
    assert!(
        bad.content.is_other(),
        "malformed known payload is kept raw"
    );
    assert_eq!(bad.raw_payload(), Some(&json!("not an object")));

    assert_eq!(
        v.statuses[0].status,
        StatusKind::Other("pending_review".into())
    );
}
