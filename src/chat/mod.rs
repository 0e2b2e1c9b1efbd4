//! Chat: one private session per booking, messages with receipts, typing indicators.

mod graphql;
mod locked;
mod notices;
mod send;
mod send_queue;
mod service;
mod subscription;
mod typing;

pub use graphql::{ChatMutation, ChatQuery};
pub use send::SendRequest;
pub use send_queue::SendQueue;
pub use service::{ChatService, Horizon, NewMessage};
pub use subscription::ChatSubscription;
pub use typing::TypingGate;
