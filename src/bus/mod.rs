//! The event bus: committed changes, fanned out to subscription streams.
//!
//! Publishers are domain services (through [`crate::db::Write`], which publishes after commit);
//! subscribers are GraphQL subscription resolvers, which filter by the viewer.
//!
//! A subscriber that falls behind is told so ([`Delivery::Missed`]) instead of being
//! waited for, and every subscription recovers by the rule of its kind of stream:
//! - stored items (`messageAdded`, `notificationAdded`) resume from their cursor: [`feed`];
//! - current state (`bookingUpdated`, `videoCallUpdated`, `messagesRead`,
//!   `messagesDelivered`) re-reads the state as stored: [`state`]; counts
//!   (`unreadMessageCount`, `unreadNotificationCount`) are that rule for one number:
//!   [`counter`];
//! - `typing` is never stored, so there is nothing to re-read: the next typing event
//!   supersedes what was missed, and "typing" ends by itself when no refresh comes.
//!
//! One instance uses [`InProcessBus`]. Several instances on one PostgreSQL use
//! [`PostgresBus`]: events leave with `NOTIFY` in the transaction that commits them, arrive on
//! every other instance's listening connection, and are handed to that instance's
//! [`InProcessBus`]; when that connection was lost, every subscriber there is told it missed
//! events, so the rule above covers the outage too.

pub mod counter;
pub mod feed;
mod in_process;
pub mod parking;
mod postgres;
pub mod state;
mod until_error;
mod wire;

use std::sync::Arc;

use async_graphql::futures_util::stream::BoxStream;
use sea_orm::Statement;
use serde::{Deserialize, Serialize};

pub use in_process::InProcessBus;
pub use postgres::{BusTasks, PostgresBus};

/// A committed change that someone may be subscribed to. Serialisable, because other
/// instances receive it as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Event {
    /// A booking was created or changed status.
    BookingChanged(Arc<entity::booking::Model>),
    /// A notification was stored for its user.
    NotificationAdded {
        notification: Arc<entity::notification::Model>,
        /// The user's unread count once this notification was added, so that a live badge
        /// needs no read per notification.
        unread_count: i64,
    },
    /// Notifications of `user_id` were read, unread or deleted: their unread count may differ.
    NotificationsChanged { user_id: uuid::Uuid },
    /// A chat message was stored; `members` are its session's two members.
    MessageAdded {
        message: Arc<entity::message::Model>,
        members: [uuid::Uuid; 2],
    },
    /// A member's receipt horizons moved forward.
    ReceiptsMoved {
        receipt: entity::chat_member::Model,
        members: [uuid::Uuid; 2],
        /// False when only the delivered horizon moved.
        read_moved: bool,
    },
    /// A video call was requested or changed status.
    VideoCallChanged(Arc<entity::video_call::Model>),
    /// A member started or stopped typing; never stored.
    Typing {
        session_id: uuid::Uuid,
        user_id: uuid::Uuid,
        members: [uuid::Uuid; 2],
        typing: bool,
    },
}

/// What a subscriber receives: an event, or word that it may have missed some.
#[derive(Debug, Clone)]
pub enum Delivery {
    Event(Event),
    /// Events were dropped for this subscriber (it was too slow, or the instance lost its
    /// connection to the other instances for a while): it should resynchronise.
    Missed,
}

/// Who an event concerns. Subscribers listen to one topic, so an event wakes only the
/// streams it may interest, not every stream of every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Topic {
    /// Everything about one user: their bookings, inbox, calls, unread counts.
    User(uuid::Uuid),
    /// One chat session: messages, receipts, typing.
    Session(uuid::Uuid),
}

impl Event {
    /// The topics this event is published on.
    pub fn topics(&self) -> Vec<Topic> {
        match self {
            Event::BookingChanged(booking) => vec![
                Topic::User(booking.care_recipient_id),
                Topic::User(booking.caregiver_id),
            ],
            Event::NotificationAdded { notification, .. } => {
                vec![Topic::User(notification.user_id)]
            }
            Event::NotificationsChanged { user_id } => vec![Topic::User(*user_id)],
            Event::MessageAdded { message, members } => vec![
                Topic::Session(message.chat_session_id),
                Topic::User(members[0]),
                Topic::User(members[1]),
            ],
            Event::ReceiptsMoved { receipt, .. } => vec![
                Topic::Session(receipt.session_id),
                Topic::User(receipt.user_id),
            ],
            Event::VideoCallChanged(call) => {
                vec![
                    Topic::User(call.requester_id),
                    Topic::User(call.caregiver_id),
                ]
            }
            Event::Typing { session_id, .. } => vec![Topic::Session(*session_id)],
        }
    }
}

/// Carries events to the subscribers of their topics, on this instance and on the others.
pub trait EventBus: Send + Sync + 'static {
    /// The statement that tells the other instances about a transaction's `events`, run by
    /// that transaction so that they leave if and only if it commits (PostgreSQL's
    /// `NOTIFY`); `None` when this bus does not travel through the database.
    fn announcement(&self, _events: &[Event]) -> Option<Statement> {
        None
    }
    /// Hands events of a committed transaction, whose [`Self::announcement`] it ran, to this
    /// instance's subscribers; never blocks on a slow one.
    fn publish_committed(&self, event: Event) {
        self.publish(event);
    }
    /// Hands an event that no transaction stores (typing) to the subscribers of its topics
    /// on every instance; never blocks.
    fn publish(&self, event: Event);
    /// A stream of everything published on `topic` from now on.
    fn subscribe(&self, topic: Topic) -> BoxStream<'static, Delivery>;
}
