//! The GraphQL face of chat: sessions, messages with receipts, and the chat mutations.

use std::sync::Arc;

use async_graphql::{
    Context, Enum, InputObject, Object,
    connection::{Connection, Edge},
    dataloader::DataLoader,
};
use chrono::{DateTime, Utc};
use entity::{chat_session, enums::MessageKind, message};
use uuid::Uuid;

use super::{
    loaders::SessionByBookingLoader,
    notices::message_cursor,
    plan::{NewMessage, SendRequest},
    receipts::{Horizon, Receipt, SessionReceipts, members},
    send_queue::SendQueue,
    service::ChatService,
    typing::TypingGate,
};
use crate::{
    bookings::{Booking, BookingChat, ChatOfBooking},
    bus::Event,
    error::AppError,
    paging::{PageRequest, SeqCursor, page_cost, page_size},
    state::{AppState, write_as_viewer},
    users::User,
    viewer::viewer,
};

/// Where a message is on its way to the other member.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageStatus {
    /// Stored; the other member's client has not acknowledged it yet.
    Sent,
    /// The other member's client acknowledged it (`markMessagesDelivered`).
    Delivered,
    /// The other member read it.
    Read,
}

impl MessageStatus {
    /// The status of `message` against the receiving member's receipt.
    pub fn of(message: &message::Model, receipts: &SessionReceipts) -> Self {
        let receiver = receipts
            .values()
            .find(|receipt| receipt.user_id != message.sender_id);
        match receiver {
            Some(receiver) if message.seq <= receiver.last_read_seq => MessageStatus::Read,
            Some(receiver) if message.seq <= receiver.last_delivered_seq => {
                MessageStatus::Delivered
            }
            _ => MessageStatus::Sent,
        }
    }
}

/// One chat message.
#[derive(Clone)]
pub struct Message {
    pub model: Arc<message::Model>,
    pub status: MessageStatus,
}

#[Object]
impl Message {
    async fn id(&self) -> Uuid {
        self.model.id
    }

    async fn session_id(&self) -> Uuid {
        self.model.chat_session_id
    }

    /// 1, 2, 3… within the session: the order, and the unit of receipts.
    async fn seq(&self) -> i64 {
        self.model.seq
    }

    async fn sender(&self, ctx: &Context<'_>) -> Result<User, AppError> {
        User::load(ctx, self.model.sender_id).await
    }

    async fn body(&self) -> &str {
        &self.model.body
    }

    /// TEXT from a person; SYSTEM for lines caregraph writes (a video call's outcome).
    async fn kind(&self) -> MessageKind {
        self.model.kind
    }

    async fn client_message_id(&self) -> &str {
        &self.model.client_message_id
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.model.created_at
    }

    /// Sent, delivered or read by the other member, as of when this was fetched.
    async fn status(&self) -> MessageStatus {
        self.status
    }

    /// Pass as `after` to `messageAdded` or `messages` to continue after this message.
    async fn cursor(&self) -> String {
        message_cursor(&self.model)
    }
}

/// A member's receipt horizons.
pub struct ChatMember(pub Receipt);

#[Object]
impl ChatMember {
    async fn session_id(&self) -> Uuid {
        self.0.session_id
    }

    async fn user(&self, ctx: &Context<'_>) -> Result<User, AppError> {
        User::load(ctx, self.0.user_id).await
    }

    /// Every message up to this seq reached the member's client.
    async fn last_delivered_seq(&self) -> i64 {
        self.0.last_delivered_seq
    }

    /// Every message up to this seq was read by the member.
    async fn last_read_seq(&self) -> i64 {
        self.0.last_read_seq
    }
}

/// The private chat of one booking's two parties.
pub struct ChatSession(pub chat_session::Model);

#[Object]
impl ChatSession {
    async fn id(&self) -> Uuid {
        self.0.id
    }

    async fn booking(&self, ctx: &Context<'_>) -> Result<Booking, AppError> {
        Booking::load(ctx, self.0.booking_id).await
    }

    async fn care_recipient(&self, ctx: &Context<'_>) -> Result<User, AppError> {
        User::load(ctx, self.0.care_recipient_id).await
    }

    async fn caregiver(&self, ctx: &Context<'_>) -> Result<User, AppError> {
        User::load(ctx, self.0.caregiver_id).await
    }

    async fn enabled_at(&self) -> DateTime<Utc> {
        self.0.enabled_at
    }

    async fn last_activity_at(&self) -> DateTime<Utc> {
        self.0.last_activity_at
    }

    /// True once the booking is cancelled, declined or completed: the history stays
    /// readable, but no new messages are accepted.
    async fn read_only(&self, ctx: &Context<'_>) -> Result<bool, AppError> {
        Ok(ChatService::closed_by(&AppState::of(ctx).db, &self.0)
            .await?
            .is_some())
    }

    /// The seq of the newest message (0 when there is none).
    async fn last_seq(&self) -> i64 {
        self.0.last_seq
    }

    async fn last_message(&self, ctx: &Context<'_>) -> Result<Option<Message>, AppError> {
        let db = &AppState::of(ctx).db;
        let Some(last) = ChatService::last_message(db, &self.0).await? else {
            return Ok(None);
        };
        let receipts = ChatService::receipts(db, self.0.id).await?;
        Ok(Some(Message {
            status: MessageStatus::of(&last, &receipts),
            model: Arc::new(last),
        }))
    }

    /// The viewer's unread messages here.
    async fn unread_count(&self, ctx: &Context<'_>) -> Result<i64, AppError> {
        ChatService::unread(&AppState::of(ctx).db, viewer(ctx)?.id, Some(self.0.id)).await
    }

    /// Both members' receipt horizons.
    #[graphql(complexity = "2 * child_complexity")]
    async fn members(&self, ctx: &Context<'_>) -> Result<Vec<ChatMember>, AppError> {
        let receipts = ChatService::receipts(&AppState::of(ctx).db, self.0.id).await?;
        let mut receipts: Vec<_> = receipts.into_values().map(ChatMember).collect();
        receipts.sort_by_key(|receipt| receipt.0.user_id != self.0.care_recipient_id);
        Ok(receipts)
    }

    /// Messages in chronological order. `first`/`after` pages forward from the oldest;
    /// `last`/`before` pages back from the newest (what a chat screen opens with).
    #[graphql(complexity = "page_cost(first.or(last), child_complexity)")]
    async fn messages(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, Message>, AppError> {
        let db = &AppState::of(ctx).db;
        let window = MessageWindow::new(self.0.id, first, after, last, before)?;
        let rows = match window {
            MessageWindow::Forward { after, limit } => {
                ChatService::messages_after(db, self.0.id, after, limit + 1).await?
            }
            MessageWindow::Backward { before, limit } => {
                let mut rows =
                    ChatService::messages_before(db, self.0.id, before, limit + 1).await?;
                rows.reverse();
                rows
            }
        };
        let receipts = ChatService::receipts(db, self.0.id).await?;
        Ok(window.connection(rows, &receipts))
    }
}

impl ChatOfBooking for BookingChat {
    type Session = ChatSession;

    async fn of_booking(
        ctx: &Context<'_>,
        booking_id: Uuid,
    ) -> Result<Option<ChatSession>, AppError> {
        let viewer = viewer(ctx)?;
        Ok(ctx
            .data_unchecked::<DataLoader<SessionByBookingLoader>>()
            .load_one(booking_id)
            .await?
            .filter(|session| session.is_member(viewer.id))
            .map(ChatSession))
    }
}

/// Which messages one `messages` call asks for.
enum MessageWindow {
    Forward { after: i64, limit: u64 },
    Backward { before: Option<i64>, limit: u64 },
}

impl MessageWindow {
    /// The window the arguments ask for in the chat `session_id`; a cursor of another list is
    /// `BAD_USER_INPUT`.
    fn new(
        session_id: Uuid,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Self, AppError> {
        let cursor = |value: Option<String>, field: &'static str| {
            SeqCursor::seq_in(value, field, session_id)
        };
        match (
            first.is_some() || after.is_some(),
            last.is_some() || before.is_some(),
        ) {
            (true, true) => Err(AppError::bad_input(
                "last",
                "page forward (first/after) or backward (last/before), not both",
            )),
            (_, false) => Ok(MessageWindow::Forward {
                after: cursor(after, "after")?.unwrap_or(0),
                limit: page_size(first, "first")?,
            }),
            (false, true) => Ok(MessageWindow::Backward {
                before: cursor(before, "before")?,
                limit: page_size(last, "last")?,
            }),
        }
    }

    /// The page from up to `limit + 1` rows in chronological order.
    fn connection(
        &self,
        mut rows: Vec<message::Model>,
        receipts: &SessionReceipts,
    ) -> Connection<String, Message> {
        let (has_previous, has_next) = match *self {
            MessageWindow::Forward { after, limit } => {
                let more = rows.len() as u64 > limit;
                rows.truncate(limit as usize);
                (after > 0, more)
            }
            MessageWindow::Backward { before, limit } => {
                let more = rows.len() as u64 > limit;
                if more {
                    rows.remove(0);
                }
                (more, before.is_some())
            }
        };
        let mut connection = Connection::new(has_previous, has_next);
        connection.edges = rows
            .into_iter()
            .map(|row| {
                let status = MessageStatus::of(&row, receipts);
                Edge::new(
                    message_cursor(&row),
                    Message {
                        model: Arc::new(row),
                        status,
                    },
                )
            })
            .collect();
        connection
    }
}

#[derive(InputObject)]
pub struct SendMessageInput {
    session_id: Uuid,
    /// Trimmed; 1 to 4,000 characters.
    body: String,
    /// Chosen by the client (a UUID is fine); retrying with the same id returns the
    /// original message instead of sending twice.
    client_message_id: String,
}

#[derive(Default)]
pub struct ChatQuery;

#[Object]
impl ChatQuery {
    /// The viewer's chats, most recently active first.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn chat_sessions(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, ChatSession>, AppError> {
        let viewer = viewer(ctx)?;
        let page = PageRequest::new(first, after)?;
        let rows = ChatService::sessions(&AppState::of(ctx).db, viewer, &page).await?;
        Ok(page.connection(rows, ChatService::position, ChatSession))
    }

    /// One chat the viewer is a member of.
    async fn chat_session(&self, ctx: &Context<'_>, id: Uuid) -> Result<ChatSession, AppError> {
        let session = ChatService::find_for(&AppState::of(ctx).db, viewer(ctx)?, id).await?;
        Ok(ChatSession(session))
    }
}

#[derive(Default)]
pub struct ChatMutation;

#[Object]
impl ChatMutation {
    /// Opens the chat of a pending or accepted booking (either party); returns the existing
    /// chat when it is already open.
    async fn enable_chat(
        &self,
        ctx: &Context<'_>,
        booking_id: Uuid,
    ) -> Result<ChatSession, AppError> {
        let session = write_as_viewer(ctx, async |write, viewer| {
            ChatService::enable(write, viewer, booking_id).await
        })
        .await?;
        Ok(ChatSession(session))
    }

    /// Sends a message; idempotent on `clientMessageId`.
    async fn send_message(
        &self,
        ctx: &Context<'_>,
        input: SendMessageInput,
    ) -> Result<Message, AppError> {
        let viewer = viewer(ctx)?;
        let request = SendRequest {
            sender_id: viewer.id,
            message: NewMessage {
                session_id: input.session_id,
                body: input.body,
                client_message_id: input.client_message_id,
            },
        };
        let sent = ctx.data_unchecked::<SendQueue>().send(request).await?;
        Ok(Message {
            status: MessageStatus::of(&sent.message, &sent.receipts),
            model: Arc::new(sent.message),
        })
    }

    /// The viewer's client acknowledges every message up to `upToSeq`.
    async fn mark_messages_delivered(
        &self,
        ctx: &Context<'_>,
        session_id: Uuid,
        up_to_seq: i64,
    ) -> Result<ChatMember, AppError> {
        mark(ctx, session_id, up_to_seq, Horizon::Delivered).await
    }

    /// The viewer read every message up to `upToSeq`; their message notifications of this
    /// chat up to there are marked read too.
    async fn mark_messages_read(
        &self,
        ctx: &Context<'_>,
        session_id: Uuid,
        up_to_seq: i64,
    ) -> Result<ChatMember, AppError> {
        mark(ctx, session_id, up_to_seq, Horizon::Read).await
    }

    /// Tells the other member the viewer is (or stopped) typing. Never stored; it expires by
    /// itself a few seconds after the last `typing: true`. Returns whether it was passed on
    /// (unchanged refreshes within a second are absorbed).
    async fn set_typing(
        &self,
        ctx: &Context<'_>,
        session_id: Uuid,
        typing: bool,
    ) -> Result<bool, AppError> {
        let viewer = viewer(ctx)?;
        let state = AppState::of(ctx);
        let session = ChatService::find_for(&state.db, viewer, session_id).await?;
        if !ctx
            .data_unchecked::<Arc<TypingGate>>()
            .admit(viewer.id, session.id, typing)?
        {
            return Ok(false);
        }
        state.bus.publish(Event::Typing {
            session_id: session.id,
            user_id: viewer.id,
            members: members(&session),
            typing,
        });
        Ok(true)
    }
}

async fn mark(
    ctx: &Context<'_>,
    session_id: Uuid,
    up_to_seq: i64,
    horizon: Horizon,
) -> Result<ChatMember, AppError> {
    let receipt = write_as_viewer(ctx, async |write, viewer| {
        ChatService::mark(write, viewer, session_id, up_to_seq, horizon).await
    })
    .await?;
    Ok(ChatMember(receipt))
}
