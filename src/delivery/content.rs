//! What a push says for a notification: its title and body (a message's text only where its
//! user opted in), the ids the app opens the right screen with, the badge, and how urgent
//! it is and for how long it is worth showing.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use entity::{enums::NotificationType, notification};
use uuid::Uuid;

use super::provider::Push;

/// The push for `notification` to one device, as delivery `delivery_id`.
pub fn push(
    notification: &notification::Model,
    delivery_id: Uuid,
    message_previews: bool,
    badge: i64,
) -> Push {
    let mut data: BTreeMap<String, String> = BTreeMap::from([
        ("notificationId".to_owned(), notification.id.to_string()),
        ("type".to_owned(), type_name(notification.kind)),
    ]);
    if let Some(fields) = notification.data.as_object() {
        for (key, value) in fields {
            let text = match value {
                serde_json::Value::String(text) => text.clone(),
                serde_json::Value::Null => continue,
                other => other.to_string(),
            };
            data.insert(key.clone(), text);
        }
    }
    let session = data
        .get("sessionId")
        .and_then(|id| Uuid::parse_str(id).ok());
    let is_message = notification.kind == NotificationType::MessageReceived;
    let body = if is_message && !message_previews {
        "Open the app to read it.".to_owned()
    } else {
        notification.body.clone()
    };
    let urgent = notification.kind == NotificationType::VideoCallRequested;
    Push {
        idempotency_key: delivery_id,
        collapse: if is_message { session } else { None },
        title: notification.title.clone(),
        body,
        data,
        badge: u32::try_from(badge.max(0)).unwrap_or(u32::MAX),
        urgent,
        expires_at: urgent.then(|| expires_at(notification)).flatten(),
    }
}

/// When a call request stops being answerable, from the notification's `expiresAt`.
pub fn expires_at(notification: &notification::Model) -> Option<DateTime<Utc>> {
    notification
        .data
        .get("expiresAt")
        .and_then(|at| at.as_str())
        .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
        .map(|at| at.with_timezone(&Utc))
}

/// The type as GraphQL names it (`MESSAGE_RECEIVED`), the name apps switch on.
pub fn type_name(kind: NotificationType) -> String {
    match async_graphql::resolver_utils::enum_value(kind) {
        async_graphql::Value::Enum(name) => name.to_string(),
        _ => String::new(),
    }
}
