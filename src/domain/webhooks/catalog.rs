//! The event catalog. Names are defined once, in `store::events` (the
//! interface event producers call); this adds what customers read about them.
pub use crate::store::events::{
    ALL_EVENTS, FORWARDED, MESSAGE_RECEIVED, MESSAGE_SENT, MESSAGE_STATUS_UPDATED,
    PHONE_NUMBER_CONNECTED, PHONE_NUMBER_HEALTH_UPDATED, SUBSCRIBABLE, TEMPLATE_STATUS_UPDATED,
    WEBHOOK_TEST,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventType {
    pub name: &'static str,
    pub description: &'static str,
    pub subscribable: bool,
    /// Named by the platform guide; false for wagate's additions.
    pub documented: bool,
}

pub const CATALOG: [EventType; 7] = [
    EventType {
        name: MESSAGE_RECEIVED,
        description: "A message was received from a contact. `data` has the message fields and the contact identity fields (contactIdentifier, contactReplyTo, nullable contactPhone, ...).",
        subscribable: true,
        documented: true,
    },
    EventType {
        name: MESSAGE_SENT,
        description: "A message was sent to a contact: Meta accepted it and gave it a wamid.",
        subscribable: true,
        documented: true,
    },
    EventType {
        name: MESSAGE_STATUS_UPDATED,
        description: "A message's status changed: delivered, read or failed (with the error).",
        subscribable: true,
        documented: true,
    },
    EventType {
        name: PHONE_NUMBER_CONNECTED,
        description: "A phone number was connected to the organization through onboarding.",
        subscribable: true,
        documented: true,
    },
    EventType {
        name: PHONE_NUMBER_HEALTH_UPDATED,
        description: "A phone number's health snapshot changed (quality rating, messaging limit, capabilities, issues).",
        subscribable: true,
        documented: false,
    },
    EventType {
        name: TEMPLATE_STATUS_UPDATED,
        description: "Meta changed a message template's review status (approved, rejected, paused, disabled).",
        subscribable: true,
        documented: false,
    },
    EventType {
        name: WEBHOOK_TEST,
        description: "Sent by POST /v1/outgoing-webhooks/{webhookId}/test to that endpoint only; cannot be subscribed to.",
        subscribable: false,
        documented: false,
    },
];

/// The catalog entry of a name.
pub fn find(name: &str) -> Option<&'static EventType> {
    CATALOG.iter().find(|e| e.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_covers_every_subscribable_name_once() {
        for name in SUBSCRIBABLE {
            let e = find(name).expect("in the catalog");
            assert!(e.subscribable);
        }
        assert_eq!(
            CATALOG.iter().filter(|e| e.subscribable).count(),
            SUBSCRIBABLE.len()
        );
        assert!(!find(WEBHOOK_TEST).expect("test event").subscribable);
        let documented: Vec<_> = CATALOG
            .iter()
            .filter(|e| e.documented)
            .map(|e| e.name)
            .collect();
        assert_eq!(
            documented,
            [
                "message.received",
                "message.sent",
                "message.status_updated",
                "phone_number.connected"
            ]
        );
        for f in FORWARDED {
            assert!(find(f).is_some());
        }
    }
}
