//! What chat tells people in their inbox.

use entity::{chat_session, enums::NotificationType, message, user};
use serde_json::json;

use crate::notifications::Notice;

/// How much of a message the inbox shows; the rest is in the chat.
const PREVIEW_CHARS: usize = 140;

/// The dedupe key of a message's notification. Zero-padded so that keys order like seqs,
/// which lets reading a session mark its notifications read up to a seq.
pub fn message_key(session_id: uuid::Uuid, seq: i64) -> String {
    format!("chat:{session_id}:{seq:020}")
}

/// The prefix shared by every message notification of a session.
pub fn session_key_prefix(session_id: uuid::Uuid) -> String {
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
    recipient_id: uuid::Uuid,
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
        data: json!({ "sessionId": session.id, "messageId": message.id, "bookingId": session.booking_id }),
        dedupe_key: Some(message_key(session.id, message.seq)),
    }
}

/// To a sender: the other member read their messages up to `seq`.
pub fn read(
    session: &chat_session::Model,
    reader: &user::Model,
    sender_id: uuid::Uuid,
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
