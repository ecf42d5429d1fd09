//! MessageService: send (single, per phone, bulk), get with timeline, list,
//! retry, cancel.
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use super::convert;
use crate::app::App;
use crate::auth::principal;
use crate::domain::messaging::build::{LocationIn, MediaIn, OutboundInput, ReactionIn, TemplateIn};
use crate::domain::messaging::send::{self, DryRun, SendContext, SendOutcome};
use crate::domain::{DomainError, validate};
use crate::pb;
use crate::store::messages::MessageFilter;

pub struct MessageApi {
    app: App,
}

impl MessageApi {
    pub fn new(app: App) -> Self {
        Self { app }
    }

    /// One message as a reply shows it: with its whole timeline (the
    /// replies about one message; sends and lists leave it out).
    async fn with_timeline(
        &self,
        m: &crate::store::messages::MessageRow,
        c: Option<&crate::store::contacts::ContactRow>,
    ) -> Result<pb::Message, Status> {
        let timeline = self
            .app
            .store
            .message_timeline(m.id)
            .await
            .map_err(DomainError::from)?;
        Ok(convert::message(m, c, &timeline))
    }
}

fn idempotency_key<T>(req: &Request<T>) -> Result<Option<String>, Status> {
    match req.metadata().get("idempotency-key") {
        None => Ok(None),
        Some(v) => v.to_str().map(|s| Some(s.to_owned())).map_err(|_| {
            DomainError::validation(
                "Idempotency-Key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters, without spaces",
            )
            .into()
        }),
    }
}

fn media(m: Option<pb::MediaInput>) -> Option<MediaIn> {
    m.map(|m| MediaIn {
        id: m.id,
        link: m.link,
        caption: m.caption,
        filename: m.filename,
        voice: m.voice,
    })
}

/// The proto message as the domain's input (pass-through payloads as JSON).
/// A send's message as the domain takes it; `prefix` names its fields
/// (`messages[3].` in a bulk request).
pub fn input(m: pb::OutboundMessage, prefix: &str) -> Result<OutboundInput, DomainError> {
    let kind =
        convert::request_enum::<pb::MessageType>(&format!("{prefix}type"), m.r#type)?.map(|t| {
            t.as_str_name()
                .trim_start_matches("MESSAGE_TYPE_")
                .to_ascii_lowercase()
        });
    let send_at = convert::optional_time(&format!("{prefix}sendAt"), m.send_at.as_ref())?;
    Ok(OutboundInput {
        to: m.to,
        kind,
        text: m.text.as_ref().map(convert::value_to_json),
        image: media(m.image),
        video: media(m.video),
        audio: media(m.audio),
        document: media(m.document),
        sticker: media(m.sticker),
        location: m.location.map(|l| LocationIn {
            latitude: l.latitude,
            longitude: l.longitude,
            name: l.name,
            address: l.address,
        }),
        contacts: m.contacts.as_ref().map(convert::list_to_json),
        interactive: m.interactive.as_ref().map(convert::struct_to_json),
        template: m.template.map(|t| TemplateIn {
            name: t.name,
            language: t.language.as_ref().map(convert::value_to_json),
            components: t.components.as_ref().map(convert::list_to_json),
        }),
        reaction: m.reaction.map(|r| ReactionIn {
            message_id: r.message_id,
            emoji: r.emoji,
        }),
        reply_to: m.reply_to,
        send_at,
        dry_run: m.dry_run,
        phone_id: m.phone_id,
    })
}

fn dry_run(d: &DryRun) -> pb::DryRun {
    pb::DryRun {
        phone_id: d.phone.id.to_string(),
        meta_phone_number_id: d.phone.meta_phone_number_id.clone(),
        path: d.path.clone(),
        request: Some(convert::json_struct(&d.request)),
        contact_id: d.contact_id.map(|c| c.to_string()),
        window_open: d.window_open,
        window_expires_at: d.window_expires_at.map(convert::ts),
        warnings: d.warnings.clone(),
        status: convert::message_status(d.status) as i32,
    }
}

/// A send's answer: flagged when it replays an idempotent original, and
/// 200 over REST for a dry run (nothing was accepted).
fn reply<T>(body: T, replayed: bool, dry_run: bool) -> Response<T> {
    let mut resp = Response::new(body);
    if replayed {
        resp.metadata_mut()
            .insert("idempotent-replayed", MetadataValue::from_static("true"));
    }
    if dry_run {
        resp.metadata_mut().insert(
            crate::rest::HTTP_STATUS_METADATA,
            MetadataValue::from_static("200"),
        );
    }
    resp
}

/// A single send as both send RPCs answer it.
struct Sent {
    data: Option<pb::Message>,
    dry_run: Option<pb::DryRun>,
    replayed: bool,
}

impl Sent {
    /// The RPC's response, built by `body` from the message or the dry run.
    fn reply<T>(
        self,
        body: impl FnOnce(Option<pb::Message>, Option<pb::DryRun>) -> T,
    ) -> Response<T> {
        let dry = self.dry_run.is_some();
        reply(body(self.data, self.dry_run), self.replayed, dry)
    }
}

impl MessageApi {
    async fn send(
        &self,
        org_id: uuid::Uuid,
        key: Option<String>,
        rpc: &'static str,
        msg: Option<pb::OutboundMessage>,
        phone: Option<&str>,
    ) -> Result<Sent, Status> {
        let msg = msg.ok_or_else(|| DomainError::validation("to", "a message body is required"))?;
        let ctx = SendContext {
            org_id,
            idempotency_key: key,
            rpc,
        };
        Ok(
            match send::send(&self.app, &ctx, input(msg, "")?, phone).await? {
                SendOutcome::Accepted {
                    message,
                    contact,
                    replayed,
                } => Sent {
                    data: Some(convert::message(&message, Some(&contact), &[])),
                    dry_run: None,
                    replayed,
                },
                SendOutcome::DryRun(d) => Sent {
                    data: None,
                    dry_run: Some(dry_run(&d)),
                    replayed: false,
                },
            },
        )
    }
}

#[tonic::async_trait]
impl pb::message_service_server::MessageService for MessageApi {
    async fn send_message(
        &self,
        req: Request<pb::SendMessageRequest>,
    ) -> Result<Response<pb::SendMessageResponse>, Status> {
        let org = principal(&req)?.org_id();
        let key = idempotency_key(&req)?;
        let sent = self
            .send(org, key, "SendMessage", req.into_inner().message, None)
            .await?;
        Ok(sent.reply(|data, dry_run| pb::SendMessageResponse { data, dry_run }))
    }

    async fn send_phone_message(
        &self,
        req: Request<pb::SendPhoneMessageRequest>,
    ) -> Result<Response<pb::SendPhoneMessageResponse>, Status> {
        let org = principal(&req)?.org_id();
        let key = idempotency_key(&req)?;
        let r = req.into_inner();
        let sent = self
            .send(org, key, "SendPhoneMessage", r.message, Some(&r.phone_id))
            .await?;
        Ok(sent.reply(|data, dry_run| pb::SendPhoneMessageResponse { data, dry_run }))
    }

    async fn bulk_send_messages(
        &self,
        req: Request<pb::BulkSendMessagesRequest>,
    ) -> Result<Response<pb::BulkSendMessagesResponse>, Status> {
        let org = principal(&req)?.org_id();
        let key = idempotency_key(&req)?;
        let r = req.into_inner();
        let ctx = SendContext {
            org_id: org,
            idempotency_key: key,
            rpc: "BulkSendMessages",
        };
        let items = r
            .messages
            .into_iter()
            .enumerate()
            .map(|(i, m)| input(m, &format!("messages[{i}].")))
            .collect::<Result<Vec<_>, _>>()?;
        let send_at = convert::optional_time("sendAt", r.send_at.as_ref())?;
        let out = send::send_bulk(&self.app, &ctx, items, r.phone_id.as_deref(), send_at).await?;
        let data = pb::BulkResult {
            batch_id: out.batch_id.to_string(),
            accepted: i32::try_from(out.accepted.len()).unwrap_or(i32::MAX),
            rejected: i32::try_from(out.errors.len()).unwrap_or(i32::MAX),
            messages: out
                .accepted
                .iter()
                .map(|(m, c)| convert::message(m, Some(c), &[]))
                .collect(),
            errors: out
                .errors
                .iter()
                .map(|e| pb::BulkItemError {
                    index: i32::try_from(e.index).unwrap_or(i32::MAX),
                    code: e.code.to_owned(),
                    field: e.field.clone(),
                    message: e.message.clone(),
                })
                .collect(),
        };
        Ok(reply(
            pb::BulkSendMessagesResponse { data: Some(data) },
            out.replayed,
            false,
        ))
    }

    async fn get_message(
        &self,
        req: Request<pb::GetMessageRequest>,
    ) -> Result<Response<pb::GetMessageResponse>, Status> {
        let org = principal(&req)?.org_id();
        let id = validate::uuid("messageId", &req.into_inner().message_id)?;
        let (m, c) = self
            .app
            .store
            .get_message(org, id)
            .await
            .map_err(DomainError::from)?
            .ok_or(DomainError::NotFound("message"))?;
        Ok(Response::new(pb::GetMessageResponse {
            data: Some(self.with_timeline(&m, c.as_ref()).await?),
        }))
    }

    async fn list_messages(
        &self,
        req: Request<pb::ListMessagesRequest>,
    ) -> Result<Response<pb::ListMessagesResponse>, Status> {
        let org = principal(&req)?.org_id();
        let r = req.into_inner();
        let page = validate::page(r.page, r.limit)?;
        let uuid_filter = |field: &str, v: &str| -> Result<Option<uuid::Uuid>, DomainError> {
            match v.trim() {
                "" => Ok(None),
                s => validate::uuid(field, s).map(Some),
            }
        };
        let status = convert::request_enum::<pb::MessageStatus>("status", r.status)?.map(|s| {
            s.as_str_name()
                .trim_start_matches("MESSAGE_STATUS_")
                .to_ascii_lowercase()
        });
        let direction =
            convert::request_enum::<pb::Direction>("direction", r.direction)?.map(|d| {
                d.as_str_name()
                    .trim_start_matches("DIRECTION_")
                    .to_ascii_lowercase()
            });
        let filter = MessageFilter {
            status,
            phone_id: uuid_filter("phoneId", &r.phone_id)?,
            contact_id: uuid_filter("contactId", &r.contact_id)?,
            batch_id: uuid_filter("batchId", &r.batch_id)?,
            conversation_id: None,
            direction,
            created_after: convert::optional_time("createdAfter", r.created_after.as_ref())?,
            created_before: convert::optional_time("createdBefore", r.created_before.as_ref())?,
        };
        let (rows, total) = self
            .app
            .store
            .list_messages(org, &filter, page)
            .await
            .map_err(DomainError::from)?;
        Ok(Response::new(pb::ListMessagesResponse {
            data: rows
                .iter()
                .map(|(m, c)| convert::message(m, c.as_ref(), &[]))
                .collect(),
            meta: Some(convert::list_meta(page, total)),
        }))
    }

    async fn retry_message(
        &self,
        req: Request<pb::RetryMessageRequest>,
    ) -> Result<Response<pb::RetryMessageResponse>, Status> {
        let org = principal(&req)?.org_id();
        let id = validate::uuid("messageId", &req.into_inner().message_id)?;
        let (m, c) = send::retry(&self.app, org, id).await?;
        Ok(Response::new(pb::RetryMessageResponse {
            data: Some(self.with_timeline(&m, c.as_ref()).await?),
        }))
    }

    async fn cancel_message(
        &self,
        req: Request<pb::CancelMessageRequest>,
    ) -> Result<Response<pb::CancelMessageResponse>, Status> {
        let org = principal(&req)?.org_id();
        let id = validate::uuid("messageId", &req.into_inner().message_id)?;
        let (m, c) = send::cancel(&self.app, org, id).await?;
        Ok(Response::new(pb::CancelMessageResponse {
            data: Some(self.with_timeline(&m, c.as_ref()).await?),
        }))
    }
}
