//! What chat tells people in their inbox, and telling the recipients of a batch of messages
//! in one go.

use std::collections::HashMap;

use entity::{chat_session, enums::NotificationType, message, user};
use serde_json::json;
use uuid::Uuid;

use crate::{
    db::Write,
    error::AppError,
    notifications::{Notice, NotificationService},
    paging::{CursorKey, SeqCursor},
};

/// How much of a message the inbox shows; the rest is in the chat.
const PREVIEW_CHARS: usize = 140;

/// The dedupe key of a message's notification. Zero-padded so that keys order like seqs,
/// which lets reading a session mark its notifications read up to a seq.
pub fn message_key(session_id: Uuid, seq: i64) -> String {
    format!("chat:{session_id}:{seq:020}")
}

/// A message's cursor, as `Message.cursor` presents it and a message's notification carries
/// it: a position in its own chat, refused by every other.
pub fn message_cursor(message: &message::Model) -> String {
    SeqCursor {
        scope: message.chat_session_id,
        seq: message.seq,
    }
    .encode()
}

/// The prefix shared by every message notification of a session.
pub fn session_key_prefix(session_id: Uuid) -> String {
    format!("chat:{session_id}:")
}

/// To both members: chat is open for their booking.
pub fn enabled(session: &chat_session::Model, reader: &user::Model, other: &user::Model) -> Notice {
    Notice {
        user_id: reader.id,
        kind: NotificationType::ChatEnabled,
        title: "Chat enabled".to_owned(),
        body: format!(
            "You can now chat with {} about your booking.",
            other.display_name
        ),
        data: json!({ "sessionId": session.id, "bookingId": session.booking_id }),
        dedupe_key: Some(format!("chat:{}:enabled", session.id)),
    }
}

/// To the recipient of a message.
pub fn received(
    session: &chat_session::Model,
    message: &message::Model,
    sender_name: &str,
    recipient_id: Uuid,
) -> Notice {
    let mut preview: String = message.body.chars().take(PREVIEW_CHARS).collect();
    if message.body.chars().count() > PREVIEW_CHARS {
        preview.push('\u{2026}');
    }
    Notice {
        user_id: recipient_id,
        kind: NotificationType::MessageReceived,
        title: format!("New message from {sender_name}"),
        body: preview,
        data: json!({
            "sessionId": session.id,
            "messageId": message.id,
            "bookingId": session.booking_id,
            "seq": message.seq,
            "cursor": message_cursor(message),
        }),
        dedupe_key: Some(message_key(session.id, message.seq)),
    }
}

/// To a sender: the other member read their messages up to `seq`.
pub fn read(
    session: &chat_session::Model,
    reader: &user::Model,
    sender_id: Uuid,
    seq: i64,
) -> Notice {
    Notice {
        user_id: sender_id,
        kind: NotificationType::MessagesRead,
        title: format!("{} read your messages", reader.display_name),
        body: format!("{} is up to date with your chat.", reader.display_name),
        data: json!({ "sessionId": session.id, "lastReadSeq": seq }),
        dedupe_key: Some(format!("chat:{}:read:{}:{seq}", session.id, reader.id)),
    }
}

/// Tells each message's recipient, in one batch of notifications.
pub async fn notify_recipients(
    write: &Write,
    sessions: &HashMap<Uuid, chat_session::Model>,
    names: &HashMap<Uuid, String>,
    messages: &[message::Model],
) -> Result<(), AppError> {
    if messages.is_empty() {
        return Ok(());
    }
    let mut notices = Vec::with_capacity(messages.len());
    for message in messages {
        let session = sessions
            .get(&message.chat_session_id)
            .ok_or(AppError::NotFound("chat session"))?;
        let sender_name = names
            .get(&message.sender_id)
            .ok_or(AppError::NotFound("user"))?;
        let recipient = session.other_member(message.sender_id);
        notices.push(received(session, message, sender_name, recipient));
    }
    // The keys name seqs handed out just now: they cannot have notified anyone yet.
    NotificationService::notify_all_first_time(write, notices).await
}
