//! ConversationService: a phone inbox's conversations, their messages, and
//! mark-as-read.
use tonic::{Request, Response, Status};

use super::convert;
use crate::app::App;
use crate::auth::principal;
use crate::domain::{conversations, validate};
use crate::pb;

pub struct ConversationApi {
    app: App,
}

impl ConversationApi {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl pb::conversation_service_server::ConversationService for ConversationApi {
    async fn list_conversations(
        &self,
        req: Request<pb::ListConversationsRequest>,
    ) -> Result<Response<pb::ListConversationsResponse>, Status> {
        let org = principal(&req)?.org_id();
        let r = req.into_inner();
        let phone = validate::uuid("phoneId", &r.phone_id)?;
        let page = validate::page(r.page, r.limit)?;
        let (rows, total) = conversations::list(&self.app.store, org, phone, page).await?;
        Ok(Response::new(pb::ListConversationsResponse {
            data: rows
                .iter()
                .map(|(c, contact)| convert::conversation(c, contact))
                .collect(),
            meta: Some(convert::list_meta(page, total)),
        }))
    }

    async fn get_conversation(
        &self,
        req: Request<pb::GetConversationRequest>,
    ) -> Result<Response<pb::GetConversationResponse>, Status> {
        let org = principal(&req)?.org_id();
        let r = req.into_inner();
        let phone = validate::uuid("phoneId", &r.phone_id)?;
        let id = validate::uuid("conversationId", &r.conversation_id)?;
        let (c, contact) = conversations::get(&self.app.store, org, phone, id).await?;
        Ok(Response::new(pb::GetConversationResponse {
            data: Some(convert::conversation(&c, &contact)),
        }))
    }

    async fn list_conversation_messages(
        &self,
        req: Request<pb::ListConversationMessagesRequest>,
    ) -> Result<Response<pb::ListConversationMessagesResponse>, Status> {
        let org = principal(&req)?.org_id();
        let r = req.into_inner();
        let phone = validate::uuid("phoneId", &r.phone_id)?;
        let id = validate::uuid("conversationId", &r.conversation_id)?;
        let page = validate::page(r.page, r.limit)?;
        let (rows, contact, total) =
            conversations::messages(&self.app.store, org, phone, id, page).await?;
        Ok(Response::new(pb::ListConversationMessagesResponse {
            data: rows
                .iter()
                .map(|m| convert::message(m, Some(&contact), &[]))
                .collect(),
            meta: Some(convert::list_meta(page, total)),
        }))
    }

    async fn mark_conversation_read(
        &self,
        req: Request<pb::MarkConversationReadRequest>,
    ) -> Result<Response<pb::MarkConversationReadResponse>, Status> {
        let org = principal(&req)?.org_id();
        let r = req.into_inner();
        let phone = validate::uuid("phoneId", &r.phone_id)?;
        let id = validate::uuid("conversationId", &r.conversation_id)?;
        let (c, contact) =
            conversations::mark_read(&self.app, org, phone, id, r.typing_indicator).await?;
        Ok(Response::new(pb::MarkConversationReadResponse {
            data: Some(convert::conversation(&c, &contact)),
        }))
    }
}
