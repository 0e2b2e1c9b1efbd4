//! Deciding a batch of sends before anything is written: each request's message is checked
//! on its own, then answered against the locked sessions, the messages stored under the
//! batch's client ids and the drafts of the batch so far: refused, a retry of a stored
//! message or of a draft of this batch, or a new draft for the batch writer.

use std::collections::HashMap;

use entity::{
    chat_session,
    enums::{BookingStatus, MessageKind},
    message,
};
use sea_orm::{ConnectionTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::{db::batch_shape::BatchShape, error::AppError};

/// The longest message body, in characters, after trimming.
const MAX_BODY_CHARS: usize = 4000;
/// The longest client message id.
const MAX_CLIENT_ID: usize = 100;

/// What `sendMessage` asks for.
#[derive(Debug)]
pub struct NewMessage {
    /// The session to post in; the sender must be one of its members.
    pub session_id: Uuid,
    /// As typed: trimmed and checked here.
    pub body: String,
    /// The client's key for this message, which makes a retry return the original.
    pub client_message_id: String,
}

/// One `sendMessage` call: who sends what.
#[derive(Debug)]
pub struct SendRequest {
    /// The viewer who sends.
    pub sender_id: Uuid,
    /// What they send.
    pub message: NewMessage,
}

/// A message about to take its session's next seq.
pub struct Draft {
    /// The session whose next seq it takes.
    pub session_id: Uuid,
    /// Its author: a member, or for a system line the member it is attributed to.
    pub sender_id: Uuid,
    /// Trimmed and checked.
    pub body: String,
    /// The key a retry is recognised by.
    pub client_message_id: String,
    /// A person's text, or a line by caregraph itself.
    pub kind: MessageKind,
}

/// How one request of a batch is answered before anything is written.
pub enum Plan {
    /// Not sent: why.
    Refused(AppError),
    /// A retry of a message stored earlier.
    Stored(message::Model),
    /// A retry of the draft at this index, sent in the same batch.
    SameAs(usize),
    /// A new message: the index of its draft.
    New(usize),
}

/// Decides each request of a batch in turn, against what is stored and what the batch
/// already holds.
pub struct Planner<'a> {
    sessions: &'a HashMap<Uuid, chat_session::Model>,
    closed: &'a HashMap<Uuid, BookingStatus>,
    stored: &'a HashMap<(Uuid, String), message::Model>,
    /// The draft each (sender, client id) of this batch became.
    in_batch: HashMap<(Uuid, String), usize>,
    drafts: Vec<Draft>,
}

impl<'a> Planner<'a> {
    /// A planner for one batch, over what was read under the sessions' locks.
    pub fn new(
        sessions: &'a HashMap<Uuid, chat_session::Model>,
        closed: &'a HashMap<Uuid, BookingStatus>,
        stored: &'a HashMap<(Uuid, String), message::Model>,
    ) -> Self {
        Self {
            sessions,
            closed,
            stored,
            in_batch: HashMap::new(),
            drafts: Vec::new(),
        }
    }

    /// Membership first (an outsider learns nothing), then retries, then a closed chat.
    pub fn plan(
        &mut self,
        request: &SendRequest,
        checked: Result<(String, String), AppError>,
    ) -> Plan {
        let (sender_id, session_id) = (request.sender_id, request.message.session_id);
        let (body, client_id) = match checked {
            Ok(checked) => checked,
            Err(err) => return Plan::Refused(err),
        };
        if !self
            .sessions
            .get(&session_id)
            .is_some_and(|session| session.is_member(sender_id))
        {
            return Plan::Refused(AppError::NotFound("chat session"));
        }
        let key = (sender_id, client_id);
        let earlier = match (self.stored.get(&key), self.in_batch.get(&key)) {
            (Some(original), _) => Some((original.chat_session_id, Plan::Stored(original.clone()))),
            (None, Some(&index)) => self
                .drafts
                .get(index)
                .map(|draft| (draft.session_id, Plan::SameAs(index))),
            (None, None) => None,
        };
        match (earlier, self.closed.get(&session_id)) {
            (Some((earlier_session, plan)), _) if earlier_session == session_id => plan,
            (Some(_), _) => Plan::Refused(AppError::Conflict(
                "this clientMessageId was already used in another chat".to_owned(),
            )),
            (None, Some(status)) => Plan::Refused(AppError::InvalidState(format!(
                "this chat is read-only: its booking is {}",
                status.as_str()
            ))),
            (None, None) => {
                let index = self.drafts.len();
                self.in_batch.insert(key.clone(), index);
                self.drafts.push(Draft {
                    session_id,
                    sender_id,
                    body,
                    client_message_id: key.1,
                    kind: MessageKind::Text,
                });
                Plan::New(index)
            }
        }
    }

    /// The new messages of the batch, which the plans' indexes point into.
    pub fn into_drafts(self) -> Vec<Draft> {
        self.drafts
    }
}

/// Trims and checks a message's body and client id.
pub fn validate(message: &NewMessage) -> Result<(String, String), AppError> {
    let body = message.body.trim().to_owned();
    if body.is_empty() {
        return Err(AppError::bad_input("body", "a message cannot be empty"));
    }
    // PostgreSQL refuses NUL in text: caught here, it cannot fail a whole batch of sends.
    if body.contains('\0') {
        return Err(AppError::bad_input(
            "body",
            "a message cannot contain NUL characters",
        ));
    }
    if body.chars().count() > MAX_BODY_CHARS {
        return Err(AppError::bad_input(
            "body",
            format!("a message has at most {MAX_BODY_CHARS} characters"),
        ));
    }
    let client_id = message.client_message_id.trim().to_owned();
    if client_id.is_empty() || client_id.chars().count() > MAX_CLIENT_ID || client_id.contains('\0')
    {
        return Err(AppError::bad_input(
            "clientMessageId",
            format!("clientMessageId must be 1 to {MAX_CLIENT_ID} characters, without NUL"),
        ));
    }
    Ok((body, client_id))
}

/// Messages already stored under the requests' (sender, client id) pairs.
pub async fn stored_messages(
    conn: &impl ConnectionTrait,
    requests: &[SendRequest],
    checked: &[Result<(String, String), AppError>],
) -> Result<HashMap<(Uuid, String), message::Model>, AppError> {
    let keys: Vec<(Uuid, &str)> = requests
        .iter()
        .zip(checked)
        .filter_map(|(request, checked)| {
            let (_, client_id) = checked.as_ref().ok()?;
            Some((request.sender_id, client_id.as_str()))
        })
        .collect();
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let any_key = BatchShape::of(conn).pair_in(
        (message::Column::SenderId, message::Column::ClientMessageId),
        keys,
    );
    Ok(message::Entity::find()
        .filter(any_key)
        .all(conn)
        .await?
        .into_iter()
        .map(|message| {
            (
                (message.sender_id, message.client_message_id.clone()),
                message,
            )
        })
        .collect())
}
