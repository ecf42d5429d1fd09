//! # wagate simulator: a local stand-in for Meta's WhatsApp Cloud API
//!
//! Answers the Graph API calls wagate makes with Meta's real response and error bodies, posts
//! signed webhooks (message statuses, inbound messages, template reviews) the way Meta does,
//! and can be told to misbehave. It is the ground-truth recorder of the crash and fault tests:
//! every Graph request it received is logged with what it resulted in.
//!
//! Run it with `wagate simulator` (own port) or in-process (`wagate serve` in sandbox mode,
//! tests): [`Simulator::new`] + [`Simulator::router`] / [`Simulator::serve`] / [`Simulator::spawn`].
//!
//! ## Graph API
//!
//! Any `/{version}/...` (`v19.0`...`v25.0`...). Any bearer token is accepted; a missing
//! `Authorization` header (and no `access_token` parameter) answers `190` `OAuthException`
//! (HTTP 401), a token revoked through the control API answers `190`/`463`. Phone number ids
//! and WABA ids (numeric) are created on first sight: phones are `CONNECTED`, `GREEN`,
//! `TIER_1K`, throughput `STANDARD` (80 mps), health `AVAILABLE`, in the WABA
//! [`SimulatorConfig::default_waba_id`]. Unknown ids and paths answer Meta's `100`/subcode
//! `33` `GraphMethodException` with HTTP 400.
//!
//! | call | answer |
//! |---|---|
//! | `POST /{v}/{phone}/messages` | `{"messaging_product","contacts":[{"input","wa_id"}],"messages":[{"id":"wamid..."}]}`; templates add `"message_status":"accepted"`; `recipient` (BSUID) sends answer `contacts:[{"input","wa_id":"","user_id"}]`; `{"status":"read","message_id"}` (+ `typing_indicator`) answers `{"success":true}` |
//! | `GET /{v}/{phone}?fields=` | only the requested fields + `id` (default: `id,display_phone_number,verified_name,quality_rating`) |
//! | `POST /{v}/{phone}/register`, `/deregister` | `{"success":true}` (after deregistering, sends fail with 133010) |
//! | `GET/POST /{v}/{phone}/whatsapp_business_profile`, `POST /{v}/{phone}` | profile / `{"success":true}` |
//! | `GET/POST/DELETE /{v}/{waba}/subscribed_apps` | Meta's shapes; an `override_callback_uri` is verified (GET `hub.challenge`) and then receives that WABA's webhooks |
//! | `GET /{v}/{waba}`, `/{waba}/phone_numbers` | Meta's shapes, `fields=` honoured |
//! | `GET/POST/DELETE /{v}/{waba}/message_templates` | list with `paging.cursors` (`limit`, `after`, `before`, `name`, `status`, `category`, `language`), create (`{"id","status":"PENDING","category"}`), delete by `name` (+`hsm_id`); unknown name -> 100/2593002 |
//! | `GET/POST /{v}/{template-id}` | get / edit (`{"success":true}`, back to review) |
//! | `POST /{v}/{phone}/media` (multipart) | `{"id"}` |
//! | `GET /{v}/{media-id}`, `DELETE /{v}/{media-id}` | `{url,mime_type,sha256,file_size,id,messaging_product}` / `{"success":true}`; the `url` (`/whatsapp_business/attachments/?mid=...`) downloads with any bearer token |
//! | `GET /{v}/oauth/access_token?client_id&client_secret&code` | `{"access_token","token_type":"bearer"}` for a code from `POST /_sim/signup` |
//! | `GET /{v}/debug_token?input_token=` | `{"data":{app_id,type,application,expires_at,is_valid,issued_at,scopes,granular_scopes,...}}` |
//!
//! ## Status webhooks
//!
//! Every accepted message is followed by signed status webhooks, in order `sent` ->
//! `delivered` -> `read`, each after its delay ([`StatusDelays`]), `biz_opaque_callback_data`
//! echoed in each; reactions get only `sent`. Failed statuses carry
//! `errors:[{code,title,message,error_data:{details},href}]` and no pricing/contacts.
//! Delivery is retried ([`SimulatorConfig::webhook_max_attempts`], backoff from 100 ms) while the
//! target is down or answers non-2xx.
//!
//! ## Reserved recipients
//!
//! Recipients are matched on their digits (`+1 555-013-1047` = `15550131047`); for BSUID
//! recipients the digits after the country prefix (`US.15550131047`).
//!
//! | recipient | behaviour |
//! |---|---|
//! | `15550` + 6-digit code, e.g. `15550131047` | fails with Meta error `code` the way Meta reports it: 130472, 131026, 131047, 131049, 131050, 131053 as a 200 then a `failed` status webhook; every other code (e.g. `15550000100` = 100, `15550131000`, `15550131056`, `15550132001`, `15550000190`) as a synchronous error body with Meta's HTTP status |
//! | `15551` + 6-digit code, e.g. `15551131047` | the code, always synchronous |
//! | `15552` + 6-digit code, e.g. `15552131000` | the code, always as a failed status webhook |
//! | `15553000001` | only `sent` (never delivered) |
//! | `15553000002` | `sent`, `delivered`, never `read` |
//! | `15553000003` | statuses posted in reverse order: `read`, `delivered`, `sent` |
//! | `15553000004` | every status webhook posted twice |
//! | `15553000005` | `sent` then `read` (no `delivered`) |
//! | `15553000006` | `sent`, then `failed` 131026 |
//!
//! ## Throughput
//!
//! Per phone number, GCRA (token bucket) at the phone's rate (80 mps by default; 20 or 1,000
//! settable with [`Simulator::set_throughput`]) with a burst of a tenth of a second of traffic
//! (`mps/10`, at least 1; [`SimulatorConfig::throughput_burst`] overrides) -> `130429` (HTTP 400,
//! the recorded body). Counted: every send (`POST /messages` except mark-as-read/typing).
//! Per (phone, recipient) pair: one message per 6 s with bursts up to 45 -> `131056`;
//! configurable ([`PairRate`]) and can be disabled ([`SimulatorConfig::pair_rate_limit`]).
//!
//! ## Control API (`/_sim`)
//!
//! | endpoint | what |
//! |---|---|
//! | `GET /_sim/health` | `{"ok":true}` |
//! | `GET /_sim/requests?phoneNumberId&recipient&kind&method&path&bizOpaqueCallbackData&wamid&errorCode&accepted&since&limit` | the request log (`{"data":[...],"count"}`) |
//! | `DELETE /_sim/requests` | clear it |
//! | `GET /_sim/webhooks`, `DELETE /_sim/webhooks` | webhooks posted (attempts, status, body) |
//! | `GET /_sim/messages` | accepted messages |
//! | `POST /_sim/messages/{wamid}/status` `{"status":"read"\|"played"\|"failed","code"?}` | post one status webhook now |
//! | `POST /_sim/faults` (a [`Fault`] as JSON), `GET /_sim/faults`, `DELETE /_sim/faults[?phoneNumberId=]`, `DELETE /_sim/faults/{id}` | fault injection |
//! | `GET /_sim/config`, `PUT /_sim/config` ([`ConfigPatch`]) | webhook URL, delays, limits... |
//! | `PUT /_sim/throughput/{phone}` `{"mps":20}` | per-phone throughput |
//! | `GET /_sim/phones`, `PUT /_sim/phones/{id}` ([`PhonePatch`]) | phone numbers |
//! | `POST /_sim/inbound` ([`InboundMessage`]) | inject an inbound message, returns `{"wamid"}` |
//! | `POST /_sim/webhooks/raw[?signature=valid\|invalid\|missing]` | post any body, signed |
//! | `POST /_sim/signup` ([`SignupRequest`]) | Embedded Signup session: `{code,wabaId,businessId,phoneNumberIds,displayPhoneNumbers}` |
//! | `GET /_sim/templates`, `POST /_sim/templates/{id}/status` `{"status":"PAUSED","reason"?}` | templates; change a status (+ webhook) |
//! | `POST /_sim/tokens/revoke` `{"token"}` | later calls with it answer 190/463 |
//! | `POST /_sim/reset` | forget everything (world, log, faults, limits) |
pub mod config;
mod control_routes;
pub mod errors;
pub mod faults;
mod graph_routes;
pub mod ids;
mod inbound;
pub mod log;
mod management;
mod media;
mod messages;
mod reserved;
mod signup;
pub mod state;
mod templates;
pub mod throughput;
mod webhooks_out;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::sync::Semaphore;

pub use config::{ConfigPatch, PairRate, SimulatorConfig, StatusDelays};
pub use errors::GraphError;
pub use faults::{ActiveFault, Fault, FaultKind, FaultTarget};
pub use inbound::InboundMessage;
pub use log::{LoggedRequest, Outcome, RequestFilter, WebhookDelivery};
pub use management::PhonePatch;
pub use reserved::Reserved;
pub use signup::SignupRequest;
pub use state::{Phone, SentMessage, SignupSession, Template, Waba};
pub use webhooks_out::Signature;

use state::{Shared, World};

/// Errors of the in-process API.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid input: {0}")]
    Invalid(String),
    #[error("unknown {0}")]
    NotFound(String),
    #[error("no webhook URL configured")]
    NoWebhookUrl,
    #[error("webhook for {wamid:?} not delivered (last HTTP status {last_status:?})")]
    WebhookFailed {
        wamid: Option<String>,
        last_status: Option<u16>,
    },
    #[error("graph error {0:?}")]
    Graph(GraphError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The simulator. Cheap to clone; all clones share state.
#[derive(Clone)]
pub struct Simulator {
    pub(crate) shared: Arc<Shared>,
}

/// A simulator served on a local port by [`Simulator::spawn`]; stops when dropped.
pub struct RunningSimulator {
    pub simulator: Simulator,
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT` (no trailing slash). Graph base = `{base_url}/v25.0`.
    pub base_url: String,
    task: tokio::task::JoinHandle<()>,
}

impl RunningSimulator {
    /// Stops serving (open connections are dropped).
    pub fn shutdown(&self) {
        self.task.abort();
    }
}

impl Drop for RunningSimulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Installs ring as the process-wide rustls provider if none is (reqwest is built without one).
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

impl Simulator {
    pub fn new(cfg: SimulatorConfig) -> Simulator {
        ensure_crypto_provider();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        let slots = Arc::new(Semaphore::new(cfg.webhook_concurrency.max(1)));
        let mut world = World::default();
        world.create_waba(&cfg.default_waba_id, true);
        Simulator {
            shared: Arc::new(Shared {
                cfg: RwLock::new(cfg),
                world: Mutex::new(world),
                log: Mutex::new(log::RequestLog::default()),
                webhook_log: Mutex::new(std::collections::VecDeque::new()),
                webhook_seq: Mutex::new(0),
                faults: Mutex::new(faults::FaultSet::default()),
                phone_limiter: Mutex::new(throughput::Gcra::default()),
                pair_limiter: Mutex::new(throughput::Gcra::default()),
                http,
                webhook_slots: slots,
                self_url: RwLock::new(None),
            }),
        }
    }

    /// The Graph API (any `/{version}/...` path, media downloads) plus the `/_sim` control API.
    pub fn router(&self) -> axum::Router {
        control_routes::router(self.clone())
            .fallback(graph_routes::handle)
            .with_state(self.clone())
    }

    /// Serves [`Simulator::router`] on `listener` until the task is dropped.
    pub async fn serve(&self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        if let Ok(a) = listener.local_addr() {
            *self.shared.self_url.write() = Some(format!("http://{a}"));
        }
        axum::serve(listener, self.router()).await
    }

    /// Binds `addr` (e.g. `127.0.0.1:0`) and serves in the background.
    pub async fn spawn(&self, addr: &str) -> std::io::Result<RunningSimulator> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let sim = self.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = sim.serve(listener).await {
                tracing::error!(error = %e, "simulator server stopped");
            }
        });
        Ok(RunningSimulator {
            simulator: self.clone(),
            addr: local,
            base_url: format!("http://{local}"),
            task,
        })
    }

    /// Base URL for links the simulator hands out (media URLs): `public_base_url`, else the
    /// served address.
    pub(crate) fn base_url(&self) -> String {
        self.shared
            .cfg
            .read()
            .public_base_url
            .clone()
            .or_else(|| self.shared.self_url.read().clone())
            .unwrap_or_else(|| "http://127.0.0.1".into())
    }

    /// A copy of the current configuration.
    pub fn config(&self) -> SimulatorConfig {
        self.shared.cfg.read().clone()
    }

    /// Changes the run-time-changeable parts of the configuration.
    pub fn update_config(&self, patch: ConfigPatch) {
        patch.apply(&mut self.shared.cfg.write());
    }

    pub fn set_webhook_url(&self, url: Option<String>) {
        self.shared.cfg.write().webhook_url = url;
    }

    pub fn set_status_delays(&self, delays: StatusDelays) {
        self.shared.cfg.write().status_delays = delays;
    }

    /// Turns the (phone, recipient) pair limit (131056) on or off.
    pub fn set_pair_rate_limit(&self, enabled: bool) {
        self.shared.cfg.write().pair_rate_limit = enabled;
    }

    /// Sets a phone's throughput (messages per second; Meta's levels are 80, 1,000 and 20).
    /// Creates the phone if needed.
    pub fn set_throughput(&self, phone_number_id: &str, mps: u32) {
        self.update_phone(
            phone_number_id,
            PhonePatch {
                throughput_mps: Some(mps),
                ..Default::default()
            },
        );
    }

    /// Installs a fault; returns its id.
    pub fn inject_fault(&self, fault: Fault) -> u64 {
        self.shared.faults.lock().add(fault)
    }

    pub fn faults(&self) -> Vec<ActiveFault> {
        self.shared.faults.lock().list()
    }

    pub fn remove_fault(&self, id: u64) -> bool {
        self.shared.faults.lock().remove(id)
    }

    pub fn clear_faults(&self) {
        self.shared.faults.lock().clear(None);
    }

    /// Removes the faults scoped to one phone.
    pub fn clear_phone_faults(&self, phone_number_id: &str) {
        self.shared.faults.lock().clear(Some(phone_number_id));
    }

    /// Injects an inbound message as a signed webhook; returns its wamid once delivered.
    pub async fn inject_inbound(&self, msg: InboundMessage) -> Result<String, SimError> {
        inbound::inject(self, msg).await
    }

    /// Posts `body` as-is to the webhook URL, signed as asked; returns the delivery record.
    /// Message ids found in it become known inbound messages (for mark-as-read).
    pub async fn post_raw_webhook(
        &self,
        body: Vec<u8>,
        signature: Signature,
    ) -> Result<WebhookDelivery, SimError> {
        inbound::post_raw(self, body, signature).await
    }

    /// Creates an Embedded Signup session: a WABA with its phone(s) and a one-time code.
    pub fn create_signup(&self, req: SignupRequest) -> SignupSession {
        signup::create(self, req)
    }

    /// Marks an access token revoked: calls with it answer 190/463, `debug_token` says invalid.
    pub fn revoke_token(&self, token: &str) {
        self.shared
            .world
            .lock()
            .revoked_tokens
            .insert(token.to_string());
    }

    /// Every logged Graph request, oldest first.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.requests_matching(&RequestFilter::default())
    }

    pub fn requests_matching(&self, filter: &RequestFilter) -> Vec<LoggedRequest> {
        self.shared.log.lock().filtered(filter)
    }

    /// How many logged requests match (for polling: copies nothing, so it
    /// holds the log's lock, which every request takes, only briefly).
    pub fn count_matching(&self, filter: &RequestFilter) -> usize {
        self.shared.log.lock().count(filter)
    }

    /// Logged sends (`messages.send`) that were accepted (got a wamid).
    pub fn accepted_sends(&self) -> Vec<LoggedRequest> {
        self.requests_matching(&Self::accepted_filter())
    }

    /// How many sends were accepted (see [`Self::accepted_sends`]).
    pub fn accepted_send_count(&self) -> usize {
        self.count_matching(&Self::accepted_filter())
    }

    fn accepted_filter() -> RequestFilter {
        RequestFilter {
            kind: Some("messages.send".into()),
            accepted: Some(true),
            ..Default::default()
        }
    }

    pub fn clear_requests(&self) {
        self.shared.log.lock().clear();
    }

    /// Every webhook posted (or given up), oldest first.
    pub fn webhook_deliveries(&self) -> Vec<WebhookDelivery> {
        self.shared.webhook_log.lock().iter().cloned().collect()
    }

    pub fn clear_webhook_deliveries(&self) {
        self.shared.webhook_log.lock().clear();
    }

    /// Every message accepted so far.
    pub fn sent_messages(&self) -> Vec<SentMessage> {
        let mut v: Vec<_> = self.shared.world.lock().sent.values().cloned().collect();
        v.sort_by_key(|a| a.at);
        v
    }

    /// Posts one status webhook for an accepted message now (e.g. `played`, a late `failed`).
    pub async fn emit_status(
        &self,
        wamid: &str,
        status: &str,
        error_code: Option<i64>,
    ) -> Result<WebhookDelivery, SimError> {
        let msg = self
            .shared
            .world
            .lock()
            .sent
            .get(wamid)
            .cloned()
            .ok_or_else(|| SimError::NotFound(format!("message {wamid}")))?;
        let step = webhooks_out::Step::parse(status, error_code)
            .ok_or_else(|| SimError::Invalid(format!("status {status}")))?;
        Ok(self.post_status(&msg, step).await)
    }

    pub fn phones(&self) -> Vec<Phone> {
        self.shared.world.lock().phones.values().cloned().collect()
    }

    pub fn phone(&self, id: &str) -> Option<Phone> {
        self.shared.world.lock().phones.get(id).cloned()
    }

    /// Creates or changes a phone number.
    pub fn update_phone(&self, id: &str, patch: PhonePatch) -> Phone {
        management::update_phone(self, id, patch)
    }

    pub fn wabas(&self) -> Vec<Waba> {
        self.shared.world.lock().wabas.values().cloned().collect()
    }

    pub fn templates(&self) -> Vec<Template> {
        self.shared
            .world
            .lock()
            .templates
            .values()
            .cloned()
            .collect()
    }

    /// Sets a template's status (APPROVED, REJECTED, PAUSED, DISABLED...) and posts the
    /// `message_template_status_update` webhook.
    pub async fn set_template_status(
        &self,
        template_id: &str,
        status: &str,
        reason: Option<&str>,
    ) -> Result<WebhookDelivery, SimError> {
        templates::set_status(self, template_id, status, reason).await
    }

    /// Forgets everything: world, request and webhook logs, faults, limiter state.
    pub fn reset(&self) {
        let default_waba = self.shared.cfg.read().default_waba_id.clone();
        let mut world = World::default();
        world.create_waba(&default_waba, true);
        *self.shared.world.lock() = world;
        self.clear_requests();
        self.clear_webhook_deliveries();
        self.clear_faults();
        self.shared.phone_limiter.lock().clear();
        self.shared.pair_limiter.lock().clear();
    }

    /// Waits until `pred` holds for the webhook log or `timeout` passes; returns whether it held.
    pub async fn wait_for_webhooks(
        &self,
        timeout: Duration,
        pred: impl Fn(&[WebhookDelivery]) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if pred(self.shared.webhook_log.lock().make_contiguous()) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
