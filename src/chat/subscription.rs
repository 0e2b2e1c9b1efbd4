//! Live chat: new messages with gap-free resume, receipts, typing, unread counts.
//!
//! Membership is checked when a subscription starts; every event is then
//! matched against the subscribed session (whose two members never change), so
//! no event of another session can pass.

use std::{sync::Arc, time::Duration};

use async_graphql::{
    Context, Object, Subscription,
    futures_util::{Stream, StreamExt, future::BoxFuture, stream, stream::BoxStream},
};
use entity::chat_session;
use sea_orm::{DatabaseConnection, EntityTrait};
use tokio::time::Instant;
use uuid::Uuid;

use super::{
    graphql::{ChatMember, Message, MessageStatus},
    receipts::Horizon,
    service::ChatService,
    typing::TypingGate,
};
use crate::{
    bus::{
        Delivery, Event, Topic,
        counter::{Count, CountSource, live_count},
        feed::{SequencedSource, resumable},
        parking::resume_or,
        state::{Change, Start, StateSource, live_state},
    },
    error::AppError,
    paging::SeqCursor,
    state::AppState,
    users::User,
    viewer::{Viewer, viewer},
};

/// One session's messages as a sequenced stream.
struct SessionMessages {
    db: DatabaseConnection,
    session_id: Uuid,
}

impl SequencedSource for SessionMessages {
    type Item = Message;

    fn seq(item: &Message) -> i64 {
        item.model.seq
    }

    fn item_in(&self, event: &Event) -> Option<Message> {
        match event {
            Event::MessageAdded { message, .. } if message.chat_session_id == self.session_id => {
                Some(Message {
                    model: message.clone(),
                    status: MessageStatus::Sent,
                })
            }
            _ => None,
        }
    }

    fn stored_after(
        &self,
        after: i64,
        limit: u64,
    ) -> BoxFuture<'_, Result<Vec<Message>, AppError>> {
        Box::pin(async move {
            let rows = ChatService::messages_after(&self.db, self.session_id, after, limit).await?;
            if rows.is_empty() {
                // Nothing to give a status to: the usual answer when a socket resumes from
                // its last message, so it costs one read, not two.
                return Ok(Vec::new());
            }
            let members = ChatService::receipts(&self.db, self.session_id).await?;
            Ok(rows
                .into_iter()
                .map(|row| Message {
                    status: MessageStatus::of(&row, &members),
                    model: Arc::new(row),
                })
                .collect())
        })
    }

    fn head(&self) -> BoxFuture<'_, Result<i64, AppError>> {
        Box::pin(async move {
            Ok(entity::chat_session::Entity::find_by_id(self.session_id)
                .one(&self.db)
                .await
                .map_err(AppError::from)?
                .map_or(0, |session| session.last_seq))
        })
    }
}

/// A user's unread messages, in one session or all of theirs.
struct UnreadMessages {
    db: DatabaseConnection,
    user_id: Uuid,
    session_id: Option<Uuid>,
}

impl CountSource for UnreadMessages {
    fn concerns(&self, event: &Event) -> bool {
        let in_scope = |session_id: Uuid| self.session_id.is_none_or(|only| only == session_id);
        match event {
            Event::MessageAdded { message, members } => {
                members.contains(&self.user_id) && in_scope(message.chat_session_id)
            }
            Event::ReceiptsMoved { receipt, .. } => {
                receipt.user_id == self.user_id && in_scope(receipt.session_id)
            }
            _ => false,
        }
    }

    fn current(&self) -> BoxFuture<'_, Result<Count, AppError>> {
        Box::pin(async move {
            let value = ChatService::unread(&self.db, self.user_id, self.session_id).await?;
            Ok(Count { value, position: 0 })
        })
    }
}

/// One session's receipt horizons, read or delivered, as a stream of state.
///
/// An event passes on the member whose horizon it moved (the read stream only when the read
/// horizon moved). After missed events, a resync yields both members' current horizons.
struct Receipts {
    db: DatabaseConnection,
    session_id: Uuid,
    kind: Horizon,
}

impl StateSource for Receipts {
    type Item = ChatMember;

    fn change(&mut self, event: &Event) -> Change<ChatMember> {
        match event {
            Event::ReceiptsMoved {
                receipt,
                read_moved,
                ..
            } if receipt.session_id == self.session_id
                && (*read_moved || self.kind == Horizon::Delivered) =>
            {
                Change::Items(vec![ChatMember(receipt.clone())])
            }
            _ => Change::none(),
        }
    }

    fn current(&mut self) -> BoxFuture<'_, Result<Vec<ChatMember>, AppError>> {
        Box::pin(async move {
            let receipts = ChatService::receipts(&self.db, self.session_id).await?;
            Ok(receipts.into_values().map(ChatMember).collect())
        })
    }
}

/// Someone started or stopped typing.
pub struct TypingUpdate {
    session_id: Uuid,
    user_id: Uuid,
    typing: bool,
}

#[Object]
impl TypingUpdate {
    async fn session_id(&self) -> Uuid {
        self.session_id
    }

    async fn user(&self, ctx: &Context<'_>) -> Result<User, AppError> {
        User::load(ctx, self.user_id).await
    }

    async fn typing(&self) -> bool {
        self.typing
    }
}

#[derive(Default)]
pub struct ChatSubscription;

#[Subscription]
impl ChatSubscription {
    /// New messages of a session. With `after` (a message's `cursor`), first everything
    /// stored after it, then live: no gap, no duplicate, in seq order.
    async fn message_added(
        &self,
        ctx: &Context<'_>,
        session_id: Uuid,
        after: Option<String>,
    ) -> Result<BoxStream<'static, Result<Message, AppError>>, AppError> {
        resume_or(ctx, || async {
            let state = AppState::of(ctx);
            // Subscribe before the first await, so nothing published from here on is missed.
            let deliveries = state.bus.subscribe(Topic::Session(session_id));
            let session = member_session(state, viewer(ctx)?, session_id).await?;
            let after = SeqCursor::seq_in(after, "after", session.id)?;
            let source = SessionMessages {
                db: state.db.clone(),
                session_id: session.id,
            };
            Ok(resumable(source, deliveries, after))
        })
        .await
    }

    /// A member's read horizon moved: the sender's ticks turn to "read".
    ///
    /// A subscriber that falls behind the bus receives both members' current horizons. If
    /// that re-read fails, the stream ends with the error (`SERVICE_UNAVAILABLE`, retryable,
    /// or `INTERNAL`): resubscribe, then query `chatSession` for the horizons.
    async fn messages_read(
        &self,
        ctx: &Context<'_>,
        session_id: Uuid,
    ) -> Result<BoxStream<'static, Result<ChatMember, AppError>>, AppError> {
        resume_or(ctx, || receipts(ctx, session_id, Horizon::Read)).await
    }

    /// A member's delivered horizon moved (reading moves it too).
    ///
    /// Falling behind and failing re-reads are handled as for `messagesRead`.
    async fn messages_delivered(
        &self,
        ctx: &Context<'_>,
        session_id: Uuid,
    ) -> Result<BoxStream<'static, Result<ChatMember, AppError>>, AppError> {
        resume_or(ctx, || receipts(ctx, session_id, Horizon::Delivered)).await
    }

    /// The other member started or stopped typing; "typing" ends by itself when no refresh
    /// comes within a few seconds.
    ///
    /// Typing is never stored: a subscriber that falls behind re-reads nothing, and the next
    /// typing event supersedes what it missed.
    async fn typing(
        &self,
        ctx: &Context<'_>,
        session_id: Uuid,
    ) -> Result<BoxStream<'static, TypingUpdate>, AppError> {
        resume_or(ctx, || async {
            let viewer_id = viewer(ctx)?.id;
            let state = AppState::of(ctx);
            let deliveries = state.bus.subscribe(Topic::Session(session_id));
            let session = member_session(state, viewer(ctx)?, session_id).await?;
            let other = session.other_member(viewer_id);
            let ttl = ctx.data_unchecked::<Arc<TypingGate>>().ttl();
            Ok(typing_updates(deliveries, session.id, other, ttl))
        })
        .await
    }

    /// The viewer's unread messages in one session, or in all their chats without
    /// `sessionId`: the current value first, then every change.
    ///
    /// A subscriber that falls behind the bus receives the current count. If that re-read
    /// fails, the stream ends with the error (`SERVICE_UNAVAILABLE`, retryable, or
    /// `INTERNAL`): resubscribe.
    async fn unread_message_count(
        &self,
        ctx: &Context<'_>,
        session_id: Option<Uuid>,
    ) -> Result<BoxStream<'static, Result<i64, AppError>>, AppError> {
        resume_or(ctx, || async {
            let viewer = viewer(ctx)?;
            let state = AppState::of(ctx);
            let deliveries = state.bus.subscribe(Topic::User(viewer.id));
            if let Some(session_id) = session_id {
                member_session(state, viewer, session_id).await?;
            }
            let source = UnreadMessages {
                db: state.db.clone(),
                user_id: viewer.id,
                session_id,
            };
            Ok(live_count(source, deliveries))
        })
        .await
    }
}

/// The session `session_id`, if the viewer is a member of it.
///
/// Boxed: async-graphql keeps a subscription's resolver future, beside its stream, for as long
/// as the subscription executes, so a database query awaited inline would cost every live
/// subscription kilobytes; boxed, its memory is freed once the check is done.
fn member_session<'a>(
    state: &'a AppState,
    viewer: &'a Viewer,
    session_id: Uuid,
) -> BoxFuture<'a, Result<chat_session::Model, AppError>> {
    Box::pin(ChatService::find_for(&state.db, viewer, session_id))
}

/// Receipt updates of one session, for a member of it; see [`Receipts`].
async fn receipts(
    ctx: &Context<'_>,
    session_id: Uuid,
    kind: Horizon,
) -> Result<impl Stream<Item = Result<ChatMember, AppError>> + use<>, AppError> {
    let state = AppState::of(ctx);
    let deliveries = state.bus.subscribe(Topic::Session(session_id));
    let session = member_session(state, viewer(ctx)?, session_id).await?;
    let source = Receipts {
        db: state.db.clone(),
        session_id: session.id,
        kind,
    };
    Ok(live_state(source, deliveries, Start::Changes))
}

/// Turns the other member's typing events into start/stop updates, ending "typing" by itself
/// `ttl` after the last refresh. Missed events are passed over on purpose: the stream's rule
/// is that the next typing event supersedes them.
fn typing_updates(
    deliveries: async_graphql::futures_util::stream::BoxStream<'static, Delivery>,
    session_id: Uuid,
    other: Uuid,
    ttl: Duration,
) -> impl Stream<Item = TypingUpdate> + Send + 'static {
    struct State {
        deliveries: async_graphql::futures_util::stream::BoxStream<'static, Delivery>,
        expires: Option<Instant>,
    }
    let update = move |typing| TypingUpdate {
        session_id,
        user_id: other,
        typing,
    };
    stream::unfold(
        State {
            deliveries,
            expires: None,
        },
        move |mut state| async move {
            loop {
                let expiry = async {
                    match state.expires {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = expiry => {
                        state.expires = None;
                        return Some((update(false), state));
                    }
                    delivery = state.deliveries.next() => match delivery? {
                        Delivery::Event(Event::Typing { session_id: typed_in, user_id, typing, .. })
                            if typed_in == session_id && user_id == other =>
                        {
                            let was_typing = state.expires.is_some();
                            state.expires = typing.then(|| Instant::now() + ttl);
                            if was_typing != typing {
                                return Some((update(typing), state));
                            }
                        }
                        Delivery::Event(_) => {}
                        // Typing is never stored, so there is nothing to re-read: the next
                        // event supersedes what was missed (a typing client refreshes every
                        // second or so), and a missed stop ends "typing" at its expiry.
                        Delivery::Missed => {}
                    },
                }
            }
        },
    )
}
