//! Chat: one private session per booking, messages with receipts, typing indicators.

mod batch;
mod graphql;
mod locked;
mod notices;
mod plan;
mod receipts;
mod send_queue;
mod service;
mod subscription;
mod typing;

pub use graphql::{ChatMutation, ChatQuery};
pub use plan::{NewMessage, SendRequest};
pub use receipts::Horizon;
pub use send_queue::SendQueue;
pub use service::ChatService;
pub use subscription::ChatSubscription;
pub use typing::TypingGate;
