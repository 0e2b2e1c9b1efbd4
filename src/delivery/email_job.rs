//! The `email` job (one notification by email) and the `chat_digest` job (the chats still
//! unread a while after a message arrived, at most once per chat per hour), with both parts
//! of each email and its unsubscribe link.

use std::collections::HashMap;

use chrono::Duration;
use entity::{
    chat_digest, chat_member, chat_session,
    enums::{Channel, DeliveryStatus, NotificationType},
    job, message, notification, notification_delivery, user,
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set,
    sea_query::OnConflict,
};
use uuid::Uuid;

use super::{
    Delivery,
    provider::Email,
    push_job::notification_of,
    record::{self, Outcome},
};
use crate::{db::Write, error::AppError, queue::JobQueue, state::AppState};

/// The most chats one digest lists.
const DIGEST_CHATS: u64 = 20;

impl Delivery {
    /// Runs one claimed `email` job: the notification to its user's address.
    pub async fn email(&self, state: &AppState, job: &job::Model) -> Result<(), AppError> {
        let notification = notification_of(&state.db, job).await?;
        let recipient = match &notification {
            Some(row) => user::Entity::find_by_id(row.user_id).one(&state.db).await?,
            None => None,
        };
        let (Some(notification), Some(recipient), Some(mailer)) =
            (notification, recipient, self.providers.email.as_ref())
        else {
            return JobQueue::finish_alone(&state.writer, job.id).await;
        };
        let delivery = state
            .writer
            .run(async |write| ensure_row(write, &notification).await)
            .await?;
        if !matches!(delivery.status, DeliveryStatus::Pending) {
            return JobQueue::finish_alone(&state.writer, job.id).await;
        }
        let unsubscribe_url = self.unsubscribe.url(recipient.id, notification.kind)?;
        let email = Email {
            idempotency_key: delivery.id,
            to: recipient.email.clone(),
            to_name: recipient.display_name.clone(),
            subject: notification.title.clone(),
            text: format!(
                "{}\n\n{}\n\n--\nYou get this email because {} is on for your caregraph \
                 account. Stop these emails: {unsubscribe_url}\n",
                notification.title,
                notification.body,
                kind_phrase(notification.kind)
            ),
            html: format!(
                "<!doctype html><html><body><h1>{}</h1><p>{}</p><hr><p style=\"color:#666\">\
                 You get this email because {} is on for your caregraph account. \
                 <a href=\"{}\">Stop these emails</a>.</p></body></html>",
                escape(&notification.title),
                escape(&notification.body),
                kind_phrase(notification.kind),
                escape(&unsubscribe_url)
            ),
            unsubscribe_url,
        };
        let result = mailer.send(&email).await;
        record::finish_job(
            state,
            &self.backoff,
            job,
            vec![Outcome { delivery, result }],
        )
        .await
    }

    /// Runs one claimed `chat_digest` job: one email listing the user's chats that still have
    /// messages from the other member unread, leaving out chats already in a digest within
    /// the hour. Nothing unread (they read it meanwhile): no email.
    pub async fn chat_digest(&self, state: &AppState, job: &job::Model) -> Result<(), AppError> {
        let user_id = job
            .payload
            .get("userId")
            .and_then(|id| id.as_str())
            .and_then(|id| Uuid::parse_str(id).ok());
        let recipient = match user_id {
            Some(id) => user::Entity::find_by_id(id).one(&state.db).await?,
            None => None,
        };
        let (Some(recipient), Some(mailer)) = (recipient, self.providers.email.as_ref()) else {
            return JobQueue::finish_alone(&state.writer, job.id).await;
        };
        let now = state.clock.now();
        let chats = unread_chats(&state.db, recipient.id, now - Duration::hours(1)).await?;
        if chats.is_empty() {
            return JobQueue::finish_alone(&state.writer, job.id).await;
        }
        let unsubscribe_url = self
            .unsubscribe
            .url(recipient.id, NotificationType::MessageReceived)?;
        let lines: Vec<String> = chats
            .iter()
            .map(|chat| {
                format!(
                    "{}: {} unread message{}",
                    chat.other_name,
                    chat.unread,
                    if chat.unread == 1 { "" } else { "s" }
                )
            })
            .collect();
        let email = Email {
            idempotency_key: job.id,
            to: recipient.email.clone(),
            to_name: recipient.display_name.clone(),
            subject: "You have unread messages".to_owned(),
            text: format!(
                "You have unread messages on caregraph:\n\n{}\n\nOpen the app to read them.\n\n\
                 --\nStop message emails: {unsubscribe_url}\n",
                lines.join("\n")
            ),
            html: format!(
                "<!doctype html><html><body><h1>You have unread messages</h1><ul>{}</ul>\
                 <p>Open the app to read them.</p><hr><p style=\"color:#666\">\
                 <a href=\"{}\">Stop message emails</a>.</p></body></html>",
                lines
                    .iter()
                    .map(|line| format!("<li>{}</li>", escape(line)))
                    .collect::<String>(),
                escape(&unsubscribe_url)
            ),
            unsubscribe_url,
        };
        match mailer.send(&email).await {
            Ok(()) => {
                state
                    .writer
                    .run(async |write| {
                        mark_digested(write, recipient.id, &chats).await?;
                        JobQueue::finish(write, job.id).await
                    })
                    .await
            }
            Err(failure) => {
                tracing::warn!(user = %recipient.id, job = %job.id, error = %failure, "sending a chat digest");
                record::settle_failed(state, &self.backoff, job, failure).await
            }
        }
    }
}

/// A chat with messages the user has not read.
struct UnreadChat {
    session_id: Uuid,
    other_name: String,
    unread: u64,
}

/// The user's chats with messages from the other member past their read horizon, except
/// those already in a digest since `digested_before`, busiest first.
async fn unread_chats(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    digested_before: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<UnreadChat>, AppError> {
    let recent: Vec<Uuid> = chat_digest::Entity::find()
        .filter(chat_digest::Column::UserId.eq(user_id))
        .filter(chat_digest::Column::SentAt.gt(digested_before))
        .all(conn)
        .await?
        .into_iter()
        .map(|row| row.session_id)
        .collect();
    let members = chat_member::Entity::find()
        .filter(chat_member::Column::UserId.eq(user_id))
        .filter(chat_member::Column::SessionId.is_not_in(recent))
        .all(conn)
        .await?;
    let sessions: HashMap<Uuid, chat_session::Model> = chat_session::Entity::find()
        .filter(chat_session::Column::Id.is_in(members.iter().map(|member| member.session_id)))
        .all(conn)
        .await?
        .into_iter()
        .map(|session| (session.id, session))
        .collect();
    let mut chats = Vec::new();
    for member in members {
        let Some(session) = sessions.get(&member.session_id) else {
            continue;
        };
        if session.last_seq <= member.last_read_seq {
            continue;
        }
        let unread = message::Entity::find()
            .filter(message::Column::ChatSessionId.eq(session.id))
            .filter(message::Column::Seq.gt(member.last_read_seq))
            .filter(message::Column::SenderId.ne(user_id))
            .filter(message::Column::DeletedAt.is_null())
            .count(conn)
            .await?;
        if unread == 0 {
            continue;
        }
        let other = user::Entity::find_by_id(session.other_member(user_id))
            .one(conn)
            .await?;
        chats.push(UnreadChat {
            session_id: session.id,
            other_name: other.map_or_else(|| "Someone".to_owned(), |other| other.display_name),
            unread,
        });
    }
    chats.sort_by_key(|chat| std::cmp::Reverse(chat.unread));
    chats.truncate(DIGEST_CHATS as usize);
    Ok(chats)
}

/// Records that these chats were in a digest now.
async fn mark_digested(write: &Write, user_id: Uuid, chats: &[UnreadChat]) -> Result<(), AppError> {
    let rows = chats.iter().map(|chat| chat_digest::ActiveModel {
        user_id: Set(user_id),
        session_id: Set(chat.session_id),
        sent_at: Set(write.now()),
    });
    chat_digest::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::columns([chat_digest::Column::UserId, chat_digest::Column::SessionId])
                .update_column(chat_digest::Column::SentAt)
                .to_owned(),
        )
        .exec_without_returning(write)
        .await?;
    Ok(())
}

/// The notification's email delivery, created on the first run so every retry reuses its
/// id as the `Message-ID`.
async fn ensure_row(
    write: &Write,
    notification: &notification::Model,
) -> Result<notification_delivery::Model, AppError> {
    let existing = notification_delivery::Entity::find()
        .filter(notification_delivery::Column::NotificationId.eq(notification.id))
        .filter(notification_delivery::Column::Channel.eq(Channel::Email))
        .order_by_asc(notification_delivery::Column::Id)
        .one(write)
        .await?;
    if let Some(row) = existing {
        return Ok(row);
    }
    let now = write.now();
    let row = notification_delivery::Model {
        id: Uuid::now_v7(),
        notification_id: notification.id,
        user_id: notification.user_id,
        channel: Channel::Email,
        device_id: None,
        platform: None,
        status: DeliveryStatus::Pending,
        attempts: 0,
        last_error: None,
        delivered_at: None,
        created_at: now,
        updated_at: now,
    };
    notification_delivery::Entity::insert(sea_orm::IntoActiveModel::into_active_model(row.clone()))
        .exec_without_returning(write)
        .await?;
    Ok(row)
}

/// How an email names why it was sent.
fn kind_phrase(kind: NotificationType) -> &'static str {
    use NotificationType::*;
    match kind {
        BookingCreated | BookingSeriesCreated => "email for new booking requests",
        BookingAccepted | BookingDeclined | BookingCancelled | BookingCompleted => {
            "email for booking changes"
        }
        BookingReminder | BookingStartingSoon => "email for booking reminders",
        MessageReceived | MessagesRead | ChatEnabled => "email for chat",
        _ => "email for this kind of notification",
    }
}

/// Text safe inside HTML.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}
