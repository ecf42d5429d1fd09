//! Injected faults: 5xx answers, slow answers, held requests (timeouts), "accept then time
//! out" (the ambiguous outcome), dropped connections and arbitrary Meta error codes; for the
//! next N matching requests or until cleared, globally or for one phone number.
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a fault does to a matching request.
///
/// JSON (`POST /_sim/faults`): `{"kind":"server_error","status":503}`, `{"kind":"delay","ms":500}`,
/// `{"kind":"timeout"}`, `{"kind":"accept_then_timeout"}`, `{"kind":"disconnect"}`,
/// `{"kind":"accept_then_disconnect"}`, `{"kind":"meta_error","code":131000}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer `status` (5xx) without processing. The body is Meta's transient error (code 2
    /// for 503, code 1 otherwise) unless `emptyBody`.
    ServerError {
        #[serde(default = "default_5xx")]
        status: u16,
        #[serde(default, rename = "emptyBody")]
        empty_body: bool,
    },
    /// Wait `ms`, then process and answer normally. A client that gives up first leaves
    /// nothing processed.
    Delay { ms: u64 },
    /// Hold the request unprocessed and never answer: the connection is closed unanswered
    /// after `ms` (default: the config's `max_hold`) or when the client gives up.
    Timeout {
        #[serde(default)]
        ms: Option<u64>,
    },
    /// Process and record the request (the message is accepted, its webhooks follow), then
    /// hold it like [`FaultKind::Timeout`]: the ambiguous outcome.
    AcceptThenTimeout {
        #[serde(default)]
        ms: Option<u64>,
    },
    /// Close the connection without an answer, unprocessed.
    Disconnect,
    /// Process and record, then close the connection without an answer.
    AcceptThenDisconnect,
    /// Answer Meta's error `code` synchronously (catalog texts; `subcode`, `httpStatus` and
    /// `details` override).
    MetaError {
        code: i64,
        #[serde(default)]
        subcode: Option<i64>,
        #[serde(default, rename = "httpStatus")]
        http_status: Option<u16>,
        #[serde(default)]
        details: Option<String>,
    },
}

fn default_5xx() -> u16 {
    500
}

/// Which requests a fault applies to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultTarget {
    /// `POST /{phone}/messages` only (sends and mark-as-read). The default.
    #[default]
    Messages,
    /// Every Graph request (not `/_sim`).
    AllGraph,
}

/// A fault to inject: [`FaultKind`] + scope + count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    #[serde(flatten)]
    pub kind: FaultKind,
    /// Only requests for this phone number id (`None`: every phone, i.e. global).
    #[serde(default)]
    pub phone_number_id: Option<String>,
    /// For the next `count` matching requests (`None`: until cleared).
    #[serde(default)]
    pub count: Option<u32>,
    #[serde(default)]
    pub target: FaultTarget,
}

impl Fault {
    pub fn new(kind: FaultKind) -> Fault {
        Fault {
            kind,
            phone_number_id: None,
            count: None,
            target: FaultTarget::Messages,
        }
    }
    pub fn server_error(status: u16) -> Fault {
        Fault::new(FaultKind::ServerError {
            status,
            empty_body: false,
        })
    }
    pub fn delay(d: Duration) -> Fault {
        Fault::new(FaultKind::Delay {
            ms: u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
        })
    }
    pub fn timeout() -> Fault {
        Fault::new(FaultKind::Timeout { ms: None })
    }
    pub fn accept_then_timeout() -> Fault {
        Fault::new(FaultKind::AcceptThenTimeout { ms: None })
    }
    pub fn disconnect() -> Fault {
        Fault::new(FaultKind::Disconnect)
    }
    pub fn accept_then_disconnect() -> Fault {
        Fault::new(FaultKind::AcceptThenDisconnect)
    }
    pub fn meta_error(code: i64) -> Fault {
        Fault::new(FaultKind::MetaError {
            code,
            subcode: None,
            http_status: None,
            details: None,
        })
    }
    /// Only the next `n` matching requests.
    pub fn times(mut self, n: u32) -> Fault {
        self.count = Some(n);
        self
    }
    /// Only requests for this phone number id.
    pub fn for_phone(mut self, phone_number_id: impl Into<String>) -> Fault {
        self.phone_number_id = Some(phone_number_id.into());
        self
    }
    /// Every Graph request, not only `/messages`.
    pub fn on_all_graph(mut self) -> Fault {
        self.target = FaultTarget::AllGraph;
        self
    }
}

/// An installed fault, with its id and what is left of its count.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveFault {
    pub id: u64,
    #[serde(flatten)]
    pub fault: Fault,
    pub remaining: Option<u32>,
}

/// The installed faults, in installation order; phone-scoped ones win over global ones.
#[derive(Debug, Default)]
pub struct FaultSet {
    next_id: u64,
    faults: Vec<ActiveFault>,
}

impl FaultSet {
    pub fn add(&mut self, fault: Fault) -> u64 {
        self.next_id += 1;
        let remaining = fault.count;
        self.faults.push(ActiveFault {
            id: self.next_id,
            fault,
            remaining,
        });
        self.faults.retain(|f| f.remaining != Some(0));
        self.next_id
    }

    pub fn list(&self) -> Vec<ActiveFault> {
        self.faults.clone()
    }

    /// Removes every fault (`phone: None`) or those scoped to `phone`.
    pub fn clear(&mut self, phone: Option<&str>) {
        match phone {
            None => self.faults.clear(),
            Some(p) => self
                .faults
                .retain(|f| f.fault.phone_number_id.as_deref() != Some(p)),
        }
    }

    pub fn remove(&mut self, id: u64) -> bool {
        let before = self.faults.len();
        self.faults.retain(|f| f.id != id);
        before != self.faults.len()
    }

    /// Takes (consumes one use of) the fault that applies to a request.
    pub fn take(&mut self, phone: Option<&str>, is_messages: bool) -> Option<FaultKind> {
        let applies = |f: &ActiveFault, scoped: bool| {
            let target_ok = is_messages || f.fault.target == FaultTarget::AllGraph;
            let scope_ok = match (&f.fault.phone_number_id, phone) {
                (Some(p), Some(q)) => scoped && p == q,
                (None, _) => !scoped,
                (Some(_), None) => false,
            };
            target_ok && scope_ok && f.remaining != Some(0)
        };
        let idx = self
            .faults
            .iter()
            .position(|f| applies(f, true))
            .or_else(|| self.faults.iter().position(|f| applies(f, false)))?;
        let f = &mut self.faults[idx];
        let kind = f.fault.kind.clone();
        if let Some(r) = f.remaining.as_mut() {
            *r = r.saturating_sub(1);
            if *r == 0 {
                self.faults.remove(idx);
            }
        }
        Some(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_scope_and_json() {
        let mut s = FaultSet::default();
        s.add(Fault::server_error(503).times(2));
        s.add(Fault::meta_error(131000).for_phone("p1"));
        assert!(matches!(
            s.take(Some("p1"), true),
            Some(FaultKind::MetaError { .. })
        ));
        assert!(matches!(
            s.take(Some("p2"), true),
            Some(FaultKind::ServerError { .. })
        ));
        assert!(s.take(Some("p2"), false).is_none(), "not a /messages call");
        assert!(matches!(
            s.take(Some("p2"), true),
            Some(FaultKind::ServerError { .. })
        ));
        assert!(s.take(Some("p2"), true).is_none(), "count used up");
        let f: Fault = serde_json::from_str(
            r#"{"kind":"meta_error","code":131056,"phoneNumberId":"x","count":3,"target":"all_graph"}"#,
        )
        .unwrap();
        assert_eq!(f.count, Some(3));
        assert_eq!(f.target, FaultTarget::AllGraph);
        let f: Fault = serde_json::from_str(r#"{"kind":"server_error"}"#).unwrap();
        assert_eq!(f, Fault::server_error(500));
    }
}
