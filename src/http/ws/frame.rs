//! What one read from a client socket amounts to, so that an oversized message can be told
//! apart from a socket that simply failed.

use axum::{body::Bytes, extract::ws::Message};

/// One read from the socket, by what the session does with it.
pub enum Frame {
    /// A text or binary message for the protocol.
    Data(Bytes),
    /// A ping, pong or close frame: the websocket layer answers it.
    Control,
    /// A message or frame over `WS_MAX_MESSAGE_BYTES`, refused from its header on.
    TooBig,
    /// The socket closed or failed; nothing more comes from it.
    Ended,
}

impl Frame {
    /// Classifies one item of the socket's stream.
    pub fn read(message: Result<Message, axum::Error>) -> Self {
        match message {
            Ok(Message::Text(text)) => Frame::Data(Bytes::from(text)),
            Ok(Message::Binary(bytes)) => Frame::Data(bytes),
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_)) => Frame::Control,
            Err(err) => {
                if is_too_big(err) {
                    Frame::TooBig
                } else {
                    Frame::Ended
                }
            }
        }
    }
}

/// axum hides its websocket library's error behind its own; the size limit is only told apart
/// by looking at the original.
fn is_too_big(err: axum::Error) -> bool {
    matches!(
        err.into_inner().downcast_ref::<tungstenite::Error>(),
        Some(tungstenite::Error::Capacity(
            tungstenite::error::CapacityError::MessageTooLong { .. }
        ))
    )
}
