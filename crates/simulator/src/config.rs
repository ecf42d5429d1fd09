//! Configuration of a [`crate::Simulator`]: fixed at start, most of it changeable at run time
//! through the control API (`PUT /_sim/config`) or the in-process setters.
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Per-phase delays of the status webhooks that follow an accepted message. Each delay runs
/// after the previous phase was delivered (or given up). `None` = that phase (and every later
/// one) never happens, e.g. `read: None` leaves messages at `delivered`. `Some(ZERO)` is allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusDelays {
    pub sent: Option<Duration>,
    pub delivered: Option<Duration>,
    pub read: Option<Duration>,
}

impl StatusDelays {
    /// All three phases, posted back to back.
    pub fn immediate() -> Self {
        StatusDelays {
            sent: Some(Duration::ZERO),
            delivered: Some(Duration::ZERO),
            read: Some(Duration::ZERO),
        }
    }

    /// No status webhooks at all.
    pub fn none() -> Self {
        StatusDelays {
            sent: None,
            delivered: None,
            read: None,
        }
    }
}

impl Default for StatusDelays {
    /// `sent` after 50 ms, `delivered` 200 ms later, `read` 1 s later.
    fn default() -> Self {
        StatusDelays {
            sent: Some(Duration::from_millis(50)),
            delivered: Some(Duration::from_millis(200)),
            read: Some(Duration::from_secs(1)),
        }
    }
}

/// The (business phone, user) pair limit behind error 131056. GCRA with one message per
/// `period` and a burst of `burst` messages (Meta: about 1 per 6 s, bursts up to 45).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairRate {
    pub period: Duration,
    pub burst: u32,
}

impl Default for PairRate {
    fn default() -> Self {
        PairRate {
            period: Duration::from_secs(6),
            burst: 45,
        }
    }
}

/// Everything a [`crate::Simulator`] is started with.
#[derive(Clone, Debug)]
pub struct SimulatorConfig {
    /// Signs every webhook (`X-Hub-Signature-256`) and is the `client_secret` of the OAuth exchange.
    pub app_secret: String,
    /// The app id (`client_id` of the OAuth exchange, `app_id` in `debug_token`, subscribed apps).
    pub app_id: String,
    /// The app name shown in `debug_token` and `subscribed_apps`.
    pub app_name: String,
    /// Where webhooks go (wagate's `/webhooks/whatsapp`), unless a WABA has an
    /// `override_callback_uri`. `None`: webhooks are dropped (and logged as such).
    pub webhook_url: Option<String>,
    pub status_delays: StatusDelays,
    /// Default throughput of every phone number (messages per second), 80 like Meta.
    pub default_throughput_mps: u32,
    /// Burst tolerance of the per-phone limiter, in messages. `None`: a tenth of a second of
    /// traffic (`mps / 10`, at least 1), i.e. 8 at 80 mps, 2 at 20 mps, 100 at 1,000 mps.
    pub throughput_burst: Option<u32>,
    /// Enforce the per (phone, recipient) pair limit (131056). Turn off for benchmarks.
    pub pair_rate_limit: bool,
    pub pair_rate: PairRate,
    /// How long a created (or edited) template stays `PENDING` before the review outcome.
    pub template_review_delay: Duration,
    /// Template sends must name an existing `APPROVED` template (else 132001/132015/132016).
    pub strict_templates: bool,
    /// Non-template sends to a user who has not written in the last 24 h fail with 131047
    /// (failed status webhook), as on Meta. Off by default so that any recipient works.
    pub enforce_service_window: bool,
    /// Unknown numeric ids are taken as phone numbers / WABAs and created on first sight.
    /// Off: only phones and WABAs created through the control API or signup exist.
    pub auto_create: bool,
    /// The WABA that phones created on first sight belong to.
    pub default_waba_id: String,
    /// Attempts per webhook (first try included) when the target is down or answers non-2xx.
    pub webhook_max_attempts: u32,
    /// First retry delay; doubles per attempt, capped at 2 s.
    pub webhook_retry_base: Duration,
    /// Webhooks posted concurrently at most.
    pub webhook_concurrency: usize,
    /// Timeout of one webhook POST.
    pub webhook_timeout: Duration,
    /// Only deliver webhooks of WABAs that have a subscribed app (`POST /{waba}/subscribed_apps`).
    /// WABAs created on first sight start subscribed; those made by signup do not.
    pub require_subscription: bool,
    /// How long "timeout" faults hold a request before closing the connection unanswered.
    pub max_hold: Duration,
    /// Lifetime of Embedded Signup codes (Meta: 30 s).
    pub signup_code_ttl: Duration,
    /// Base of media download URLs. `None`: `http://<Host header>`.
    pub public_base_url: Option<String>,
    /// Request-log capacity; the oldest entries are dropped beyond it.
    pub max_logged_requests: usize,
}

impl SimulatorConfig {
    /// A config with the given app secret and every other field at its default.
    pub fn new(app_secret: impl Into<String>) -> Self {
        SimulatorConfig {
            app_secret: app_secret.into(),
            ..Default::default()
        }
    }

    /// Per-phone burst for a rate of `mps`.
    pub(crate) fn burst_for(&self, mps: u32) -> u32 {
        self.throughput_burst.unwrap_or((mps / 10).max(1)).max(1)
    }
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            app_secret: "sim-app-secret".into(),
            app_id: "634974688087057".into(),
            app_name: "wagate simulator".into(),
            webhook_url: None,
            status_delays: StatusDelays::default(),
            default_throughput_mps: 80,
            throughput_burst: None,
            pair_rate_limit: true,
            pair_rate: PairRate::default(),
            template_review_delay: Duration::from_secs(2),
            strict_templates: false,
            enforce_service_window: false,
            auto_create: true,
            default_waba_id: "102290129340398".into(),
            webhook_max_attempts: 5,
            webhook_retry_base: Duration::from_millis(100),
            webhook_concurrency: 64,
            webhook_timeout: Duration::from_secs(10),
            require_subscription: false,
            max_hold: Duration::from_secs(600),
            signup_code_ttl: Duration::from_secs(300),
            public_base_url: None,
            max_logged_requests: 200_000,
        }
    }
}

/// The run-time-changeable part of the config as JSON (`GET/PUT /_sim/config`); durations in
/// milliseconds, `null` delays = phase disabled. Absent fields are left as they are.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigPatch {
    #[serde(
        default,
        deserialize_with = "double",
        skip_serializing_if = "Option::is_none"
    )]
    pub webhook_url: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "double",
        skip_serializing_if = "Option::is_none"
    )]
    pub sent_delay_ms: Option<Option<u64>>,
    #[serde(
        default,
        deserialize_with = "double",
        skip_serializing_if = "Option::is_none"
    )]
    pub delivered_delay_ms: Option<Option<u64>>,
    #[serde(
        default,
        deserialize_with = "double",
        skip_serializing_if = "Option::is_none"
    )]
    pub read_delay_ms: Option<Option<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_throughput_mps: Option<u32>,
    #[serde(
        default,
        deserialize_with = "double",
        skip_serializing_if = "Option::is_none"
    )]
    pub throughput_burst: Option<Option<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pair_rate_limit: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pair_rate_period_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pair_rate_burst: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_review_delay_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict_templates: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforce_service_window: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_create: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_subscription: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_max_attempts: Option<u32>,
}

/// Tells an explicit `null` (`Some(None)`) from an absent field (`None`).
fn double<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

fn ms(d: Option<Duration>) -> Option<u64> {
    d.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl ConfigPatch {
    /// The current values of every field.
    pub(crate) fn snapshot(cfg: &SimulatorConfig) -> ConfigPatch {
        ConfigPatch {
            webhook_url: Some(cfg.webhook_url.clone()),
            sent_delay_ms: Some(ms(cfg.status_delays.sent)),
            delivered_delay_ms: Some(ms(cfg.status_delays.delivered)),
            read_delay_ms: Some(ms(cfg.status_delays.read)),
            default_throughput_mps: Some(cfg.default_throughput_mps),
            throughput_burst: Some(cfg.throughput_burst),
            pair_rate_limit: Some(cfg.pair_rate_limit),
            pair_rate_period_ms: ms(Some(cfg.pair_rate.period)),
            pair_rate_burst: Some(cfg.pair_rate.burst),
            template_review_delay_ms: ms(Some(cfg.template_review_delay)),
            strict_templates: Some(cfg.strict_templates),
            enforce_service_window: Some(cfg.enforce_service_window),
            auto_create: Some(cfg.auto_create),
            require_subscription: Some(cfg.require_subscription),
            webhook_max_attempts: Some(cfg.webhook_max_attempts),
        }
    }

    pub(crate) fn apply(self, cfg: &mut SimulatorConfig) {
        let d = |v: Option<u64>| v.map(Duration::from_millis);
        if let Some(v) = self.webhook_url {
            cfg.webhook_url = v;
        }
        if let Some(v) = self.sent_delay_ms {
            cfg.status_delays.sent = d(v);
        }
        if let Some(v) = self.delivered_delay_ms {
            cfg.status_delays.delivered = d(v);
        }
        if let Some(v) = self.read_delay_ms {
            cfg.status_delays.read = d(v);
        }
        if let Some(v) = self.default_throughput_mps {
            cfg.default_throughput_mps = v.max(1);
        }
        if let Some(v) = self.throughput_burst {
            cfg.throughput_burst = v;
        }
        if let Some(v) = self.pair_rate_limit {
            cfg.pair_rate_limit = v;
        }
        if let Some(v) = self.pair_rate_period_ms {
            cfg.pair_rate.period = Duration::from_millis(v.max(1));
        }
        if let Some(v) = self.pair_rate_burst {
            cfg.pair_rate.burst = v.max(1);
        }
        if let Some(v) = self.template_review_delay_ms {
            cfg.template_review_delay = Duration::from_millis(v);
        }
        if let Some(v) = self.strict_templates {
            cfg.strict_templates = v;
        }
        if let Some(v) = self.enforce_service_window {
            cfg.enforce_service_window = v;
        }
        if let Some(v) = self.auto_create {
            cfg.auto_create = v;
        }
        if let Some(v) = self.require_subscription {
            cfg.require_subscription = v;
        }
        if let Some(v) = self.webhook_max_attempts {
            cfg.webhook_max_attempts = v.max(1);
        }
    }
}
