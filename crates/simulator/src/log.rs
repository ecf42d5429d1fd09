//! The ground-truth record: every Graph request received (and what it resulted in), and every
//! webhook delivery attempt made.
use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What became of a logged request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Still being handled (or delayed).
    Pending,
    /// Answered (with success or an error body).
    Answered,
    /// Processed and accepted, but the answer was withheld (accept-then-timeout/disconnect).
    AcceptedUnanswered,
    /// Held or dropped unprocessed (timeout/disconnect faults).
    Unanswered,
    /// The client went away before an answer was made (nothing was processed).
    ClientGone,
}

/// One Graph request as received.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoggedRequest {
    /// Increasing sequence number (never reused, even after a clear).
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    /// The body parsed as JSON (form bodies as an object; multipart as a summary of its parts).
    pub body: Option<Value>,
    /// Headers of interest: authorization, content-type, user-agent.
    pub headers: BTreeMap<String, String>,
    /// What the request was: `messages.send`, `messages.read`, `phone.get`, `templates.create`...
    pub kind: String,
    pub phone_number_id: Option<String>,
    pub waba_id: Option<String>,
    /// `to` (as given) or `recipient` (BSUID) of a send.
    pub recipient: Option<String>,
    pub message_type: Option<String>,
    pub biz_opaque_callback_data: Option<String>,
    /// The wamid assigned, when a message was accepted.
    pub wamid: Option<String>,
    pub http_status: Option<u16>,
    /// `error.code` of the answer, if it was an error.
    pub error_code: Option<i64>,
    /// The injected fault that applied, if any (its `kind`).
    pub fault: Option<String>,
    pub outcome: Outcome,
}

/// Filter for [`crate::Simulator::requests_matching`] and `GET /_sim/requests`
/// (query parameters of the same names, camelCase).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestFilter {
    pub phone_number_id: Option<String>,
    pub recipient: Option<String>,
    pub kind: Option<String>,
    pub method: Option<String>,
    /// Substring of the path.
    pub path: Option<String>,
    pub biz_opaque_callback_data: Option<String>,
    pub wamid: Option<String>,
    pub error_code: Option<i64>,
    /// Only requests that got a wamid (accepted messages).
    pub accepted: Option<bool>,
    /// Only requests with `seq > since`.
    pub since: Option<u64>,
    pub limit: Option<usize>,
}

impl RequestFilter {
    pub fn matches(&self, r: &LoggedRequest) -> bool {
        fn eq(want: &Option<String>, got: &Option<String>) -> bool {
            want.as_ref().is_none_or(|w| got.as_ref() == Some(w))
        }
        eq(&self.phone_number_id, &r.phone_number_id)
            && eq(&self.recipient, &r.recipient)
            && eq(&self.biz_opaque_callback_data, &r.biz_opaque_callback_data)
            && eq(&self.wamid, &r.wamid)
            && self.kind.as_ref().is_none_or(|k| *k == r.kind)
            && self
                .method
                .as_ref()
                .is_none_or(|m| m.eq_ignore_ascii_case(&r.method))
            && self
                .path
                .as_ref()
                .is_none_or(|p| r.path.contains(p.as_str()))
            && self.error_code.is_none_or(|c| r.error_code == Some(c))
            && self.accepted.is_none_or(|a| a == r.wamid.is_some())
            && self.since.is_none_or(|s| r.seq > s)
    }
}

/// The request log (bounded; oldest entries dropped first).
#[derive(Debug, Default)]
pub struct RequestLog {
    next_seq: u64,
    entries: VecDeque<LoggedRequest>,
}

impl RequestLog {
    pub fn push(&mut self, mut r: LoggedRequest, cap: usize) -> u64 {
        self.next_seq += 1;
        r.seq = self.next_seq;
        self.entries.push_back(r);
        while self.entries.len() > cap.max(1) {
            self.entries.pop_front();
        }
        self.next_seq
    }

    pub fn get_mut(&mut self, seq: u64) -> Option<&mut LoggedRequest> {
        let first = self.entries.front()?.seq;
        let idx = usize::try_from(seq.checked_sub(first)?).ok()?;
        self.entries.get_mut(idx).filter(|r| r.seq == seq)
    }

    pub fn filtered(&self, f: &RequestFilter) -> Vec<LoggedRequest> {
        let it = self.entries.iter().filter(|r| f.matches(r)).cloned();
        match f.limit {
            Some(n) => it.take(n).collect(),
            None => it.collect(),
        }
    }

    /// How many entries match, without copying them.
    pub fn count(&self, f: &RequestFilter) -> usize {
        let n = self.entries.iter().filter(|r| f.matches(r)).count();
        f.limit.map_or(n, |l| n.min(l))
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

/// One webhook the simulator posted (all attempts of it).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDelivery {
    pub seq: u64,
    pub at: DateTime<Utc>,
    /// `status.sent`, `status.failed`, `message.text`, `template_status`, `raw`...
    pub kind: String,
    pub url: Option<String>,
    /// The wamid it was about, if any.
    pub wamid: Option<String>,
    pub body: Value,
    pub attempts: u32,
    /// HTTP status of the last attempt (none: connection failed / no URL).
    pub last_status: Option<u16>,
    pub delivered: bool,
}
