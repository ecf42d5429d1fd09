//! Reserved recipients (see the crate docs for the table): recipient digits that make a send
//! fail with a given Meta error, synchronously or as a failed status webhook, or that change
//! the status sequence.
use crate::errors;
use crate::webhooks_out::StatusPlan;

/// What a reserved recipient does to a send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reserved {
    /// Answer the error code synchronously.
    SyncError(i64),
    /// Accept, then a status sequence.
    Plan(StatusPlan),
}

/// The reserved behaviour of a recipient (`to` phone number or BSUID), if any.
pub fn classify(recipient: &str) -> Option<Reserved> {
    let tail = match recipient.split_once('.') {
        // BSUID `CC.<digits>`: look at the digits.
        Some((_, rest)) if !recipient.starts_with('+') => rest.rsplit('.').next().unwrap_or(rest),
        _ => recipient,
    };
    let d = crate::ids::digits(tail);
    if d.len() != 11 {
        return None;
    }
    let (prefix, rest) = d.split_at(5);
    let code: i64 = rest.parse().ok()?;
    match prefix {
        "15550" => Some(match errors::info(code) {
            Some(i) if i.asynchronous => Reserved::Plan(StatusPlan::Failed(code)),
            _ => Reserved::SyncError(code),
        }),
        "15551" => Some(Reserved::SyncError(code)),
        "15552" => Some(Reserved::Plan(StatusPlan::Failed(code))),
        "15553" => match code {
            1 => Some(Reserved::Plan(StatusPlan::SentOnly)),
            2 => Some(Reserved::Plan(StatusPlan::UpToDelivered)),
            3 => Some(Reserved::Plan(StatusPlan::Reversed)),
            4 => Some(Reserved::Plan(StatusPlan::Duplicated)),
            5 => Some(Reserved::Plan(StatusPlan::SkipDelivered)),
            6 => Some(Reserved::Plan(StatusPlan::SentThenFailed(131026))),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert_eq!(
            classify("+1 555-013-1047"),
            Some(Reserved::Plan(StatusPlan::Failed(131047)))
        );
        assert_eq!(classify("15550000100"), Some(Reserved::SyncError(100)));
        assert_eq!(classify("15551131047"), Some(Reserved::SyncError(131047)));
        assert_eq!(
            classify("15552131000"),
            Some(Reserved::Plan(StatusPlan::Failed(131000)))
        );
        assert_eq!(
            classify("US.15550131026"),
            Some(Reserved::Plan(StatusPlan::Failed(131026)))
        );
        assert_eq!(
            classify("15553000001"),
            Some(Reserved::Plan(StatusPlan::SentOnly))
        );
        assert_eq!(classify("16505551234"), None);
        assert_eq!(classify("US.13491208655302741918"), None);
    }
}
