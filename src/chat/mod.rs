//! Chat: one private session per booking, messages with receipts, typing indicators.

mod graphql;
mod notices;
mod service;
mod subscription;
mod typing;

pub use graphql::{ChatMutation, ChatQuery};
pub use service::{ChatService, Horizon, NewMessage};
pub use subscription::ChatSubscription;
pub use typing::TypingGate;
