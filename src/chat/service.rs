//! The rules of chat, over SeaORM, as resolvers and other domains call them: who may chat
//! (opening and finding sessions), reading messages and unread counts, reading and marking
//! receipts, and system lines. Storing messages is `batch`'s job; a system line goes through
//! it like any send.

use std::collections::HashMap;

use entity::{
    booking, chat_member, chat_session,
    enums::{BookingStatus, MessageKind},
    message,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, Order, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use uuid::Uuid;

use super::{
    batch::MessageBatch,
    notices,
    plan::Draft,
    receipts::{Horizon, Receipt, Receipts, SessionReceipts, forward_only, members},
};
use crate::{
    bus::Event,
    db::{
        Write,
        batch_shape::BatchShape,
        parties::{between, either_party, find_for},
    },
    error::AppError,
    notifications::NotificationService,
    paging::{PageRequest, TimeCursor},
    users::UserService,
    viewer::Viewer,
};

/// Chat sessions, messages and receipts. Every function sees only sessions the viewer is a
/// member of.
pub struct ChatService;

impl ChatService {
    /// Opens the chat of a pending or accepted booking, or returns the one already open.
    /// The first call notifies both parties.
    pub async fn enable(
        write: &Write,
        viewer: &Viewer,
        booking_id: Uuid,
    ) -> Result<chat_session::Model, AppError> {
        let now = write.now();
        let booking = find_for::<booking::Entity>(write, viewer.id, booking_id).await?;
        if let Some(existing) = chat_session::Entity::find()
            .filter(chat_session::Column::BookingId.eq(booking.id))
            .one(write)
            .await?
        {
            return Ok(existing);
        }
        if !matches!(
            booking.status,
            BookingStatus::Pending | BookingStatus::Accepted
        ) {
            return Err(AppError::InvalidState(format!(
                "cannot enable chat for a booking that is {}",
                booking.status.as_str()
            )));
        }
        let session = chat_session::ActiveModel {
            id: Set(Uuid::now_v7()),
            booking_id: Set(booking.id),
            care_recipient_id: Set(booking.care_recipient_id),
            caregiver_id: Set(booking.caregiver_id),
            enabled_at: Set(now),
            last_seq: Set(0),
            last_activity_at: Set(now),
        }
        .insert(write)
        .await?;
        for user_id in members(&session) {
            chat_member::ActiveModel {
                session_id: Set(session.id),
                user_id: Set(user_id),
                last_delivered_seq: Set(0),
                last_read_seq: Set(0),
            }
            .insert(write)
            .await?;
        }
        let (recipient, caregiver) =
            UserService::pair(write, session.care_recipient_id, session.caregiver_id).await?;
        for (reader, other) in [(&recipient, &caregiver), (&caregiver, &recipient)] {
            let notice = notices::enabled(&session, reader, other);
            NotificationService::notify(write, notice).await?;
        }
        Ok(session)
    }

    /// A session the viewer is a member of; `NOT_FOUND` for everyone else.
    pub async fn find_for(
        conn: &impl ConnectionTrait,
        viewer: &Viewer,
        session_id: Uuid,
    ) -> Result<chat_session::Model, AppError> {
        chat_session::Entity::find_by_id(session_id)
            .one(conn)
            .await?
            .filter(|session| session.is_member(viewer.id))
            .ok_or(AppError::NotFound("chat session"))
    }

    /// Why the session no longer takes messages: its booking's status, when it ended.
    pub async fn closed_by(
        conn: &impl ConnectionTrait,
        session: &chat_session::Model,
    ) -> Result<Option<BookingStatus>, AppError> {
        Ok(booking::Entity::find_by_id(session.booking_id)
            .one(conn)
            .await?
            .map(|booking| booking.status)
            .filter(|status| status.is_final()))
    }

    /// Posts a line by caregraph itself (a video call's outcome) into the open chat between
    /// two users, if they have one: the chat of `booking_id`, or else their most recent one.
    /// `author_id` is the member the line is attributed to; it notifies nobody.
    pub async fn post_system(
        write: &Write,
        members: [Uuid; 2],
        booking_id: Option<Uuid>,
        author_id: Uuid,
        body: String,
    ) -> Result<Option<message::Model>, AppError> {
        let pair = between(
            chat_session::Column::CareRecipientId,
            chat_session::Column::CaregiverId,
            members,
        );
        // Locked as it is found: the line takes the session's next seq like any send.
        let mut query = chat_session::Entity::find()
            .filter(pair)
            .order_by_desc(chat_session::Column::LastActivityAt)
            .lock_exclusive();
        if let Some(booking_id) = booking_id {
            query = query.filter(chat_session::Column::BookingId.eq(booking_id));
        }
        let Some(session) = query.one(write).await? else {
            return Ok(None);
        };
        if Self::closed_by(write, &session).await?.is_some() {
            return Ok(None);
        }
        let draft = Draft {
            session_id: session.id,
            sender_id: author_id,
            body,
            client_message_id: format!("system:{}", Uuid::now_v7()),
            kind: MessageKind::System,
        };
        let receipts = Self::receipts_of(write, [session.id]).await?;
        let sessions = HashMap::from([(session.id, session)]);
        let (stored, _) = MessageBatch::append(write, &sessions, receipts, vec![draft]).await?;
        Ok(stored.into_iter().next())
    }

    /// Moves the viewer's delivered or read horizon forward to `up_to_seq` (never back, never
    /// past the last message). Reading also marks the session's message notifications read.
    pub async fn mark(
        write: &Write,
        viewer: &Viewer,
        session_id: Uuid,
        up_to_seq: i64,
        horizon: Horizon,
    ) -> Result<Receipt, AppError> {
        if up_to_seq < 0 {
            return Err(AppError::bad_input("upToSeq", "upToSeq cannot be negative"));
        }
        let session = Self::find_for(write, viewer, session_id).await?;
        let before = Self::receipt(write, session.id, viewer.id).await?;
        let target = Ord::min(up_to_seq, session.last_seq);
        let after = Self::advance(write, &before, target, horizon).await?;
        let read_moved = after.last_read_seq > before.last_read_seq;
        if !read_moved && after.last_delivered_seq == before.last_delivered_seq {
            return Ok(after);
        }
        if read_moved {
            NotificationService::mark_read_up_to_key(
                write,
                viewer.id,
                &notices::session_key_prefix(session.id),
                &notices::message_key(session.id, after.last_read_seq),
            )
            .await?;
            let reader = UserService::find(write, viewer.id)
                .await?
                .ok_or(AppError::NotFound("user"))?;
            let notice = notices::read(
                &session,
                &reader,
                session.other_member(viewer.id),
                after.last_read_seq,
            );
            NotificationService::notify(write, notice).await?;
        }
        write.publish(Event::ReceiptsMoved {
            receipt: after.clone(),
            members: members(&session),
            read_moved,
        });
        Ok(after)
    }

    /// Moves one receipt's horizon(s) forward to `seq` with SQL `max`, so concurrent marks
    /// can only ever move it further; returns the stored result.
    async fn advance(
        write: &Write,
        receipt: &Receipt,
        seq: i64,
        horizon: Horizon,
    ) -> Result<Receipt, AppError> {
        let mut update = chat_member::Entity::update_many()
            .col_expr(
                chat_member::Column::LastDeliveredSeq,
                forward_only(chat_member::Column::LastDeliveredSeq, seq),
            )
            .filter(chat_member::Column::SessionId.eq(receipt.session_id))
            .filter(chat_member::Column::UserId.eq(receipt.user_id));
        if horizon == Horizon::Read {
            update = update.col_expr(
                chat_member::Column::LastReadSeq,
                forward_only(chat_member::Column::LastReadSeq, seq),
            );
        }
        update.exec(write).await?;
        Self::receipt(write, receipt.session_id, receipt.user_id).await
    }

    /// One member's receipt in a session.
    pub async fn receipt(
        conn: &impl ConnectionTrait,
        session_id: Uuid,
        user_id: Uuid,
    ) -> Result<Receipt, AppError> {
        chat_member::Entity::find_by_id((session_id, user_id))
            .one(conn)
            .await?
            .ok_or(AppError::NotFound("chat session"))
    }

    /// Both members' receipts of a session, by user.
    pub async fn receipts(
        conn: &impl ConnectionTrait,
        session_id: Uuid,
    ) -> Result<SessionReceipts, AppError> {
        Ok(Self::receipts_of(conn, [session_id])
            .await?
            .remove(&session_id)
            .unwrap_or_default())
    }

    /// Both members' receipts of each session, in one query: a batch of sends needs them all.
    pub async fn receipts_of(
        conn: &impl ConnectionTrait,
        session_ids: impl IntoIterator<Item = Uuid>,
    ) -> Result<Receipts, AppError> {
        let ids: Vec<Uuid> = session_ids.into_iter().collect();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut receipts: Receipts = HashMap::new();
        for receipt in chat_member::Entity::find()
            .filter(BatchShape::of(conn).is_in(chat_member::Column::SessionId, ids))
            .all(conn)
            .await?
        {
            receipts
                .entry(receipt.session_id)
                .or_default()
                .insert(receipt.user_id, receipt);
        }
        Ok(receipts)
    }

    /// The sessions of these bookings, by booking id, whoever their members are: callers
    /// check membership.
    pub async fn of_bookings(
        conn: &impl ConnectionTrait,
        booking_ids: &[Uuid],
    ) -> Result<HashMap<Uuid, chat_session::Model>, AppError> {
        Ok(chat_session::Entity::find()
            .filter(chat_session::Column::BookingId.is_in(booking_ids.iter().copied()))
            .all(conn)
            .await?
            .into_iter()
            .map(|session| (session.booking_id, session))
            .collect())
    }

    /// The viewer's sessions, most recently active first.
    pub async fn sessions(
        conn: &impl ConnectionTrait,
        viewer: &Viewer,
        page: &PageRequest<TimeCursor>,
    ) -> Result<Vec<chat_session::Model>, AppError> {
        use chat_session::Column;
        let mine = chat_session::Entity::find().filter(either_party(
            Column::CareRecipientId,
            Column::CaregiverId,
            viewer.id,
        ));
        let latest_first = page.select(mine, Column::LastActivityAt, Column::Id, Order::Desc);
        Ok(latest_first.all(conn).await?)
    }

    /// Where `session` stands in [`Self::sessions`].
    pub fn position(session: &chat_session::Model) -> TimeCursor {
        TimeCursor {
            at: session.last_activity_at,
            id: session.id,
        }
    }

    /// Messages after `after_seq`, oldest first.
    pub async fn messages_after(
        conn: &impl ConnectionTrait,
        session_id: Uuid,
        after_seq: i64,
        limit: u64,
    ) -> Result<Vec<message::Model>, AppError> {
        Ok(message::Entity::find()
            .filter(message::Column::ChatSessionId.eq(session_id))
            .filter(message::Column::Seq.gt(after_seq))
            .order_by_asc(message::Column::Seq)
            .limit(limit)
            .all(conn)
            .await?)
    }

    /// Messages before `before_seq` (all, without it), newest first.
    pub async fn messages_before(
        conn: &impl ConnectionTrait,
        session_id: Uuid,
        before_seq: Option<i64>,
        limit: u64,
    ) -> Result<Vec<message::Model>, AppError> {
        let mut query = message::Entity::find()
            .filter(message::Column::ChatSessionId.eq(session_id))
            .order_by_desc(message::Column::Seq)
            .limit(limit);
        if let Some(before) = before_seq {
            query = query.filter(message::Column::Seq.lt(before));
        }
        Ok(query.all(conn).await?)
    }

    /// The newest message of a session.
    pub async fn last_message(
        conn: &impl ConnectionTrait,
        session: &chat_session::Model,
    ) -> Result<Option<message::Model>, AppError> {
        Ok(message::Entity::find()
            .filter(message::Column::ChatSessionId.eq(session.id))
            .filter(message::Column::Seq.eq(session.last_seq))
            .one(conn)
            .await?)
    }

    /// The viewer's unread messages in one session, or in all of them.
    pub async fn unread(
        conn: &impl ConnectionTrait,
        user_id: Uuid,
        session_id: Option<Uuid>,
    ) -> Result<i64, AppError> {
        let mut receipts =
            chat_member::Entity::find().filter(chat_member::Column::UserId.eq(user_id));
        if let Some(session_id) = session_id {
            receipts = receipts.filter(chat_member::Column::SessionId.eq(session_id));
        }
        let read: HashMap<Uuid, i64> = receipts
            .all(conn)
            .await?
            .into_iter()
            .map(|receipt| (receipt.session_id, receipt.last_read_seq))
            .collect();
        let sessions = chat_session::Entity::find()
            .filter(chat_session::Column::Id.is_in(read.keys().copied()))
            .all(conn)
            .await?;
        Ok(sessions
            .iter()
            .map(|session| {
                Ord::max(
                    session.last_seq - read.get(&session.id).copied().unwrap_or(0),
                    0,
                )
            })
            .sum())
    }
}
