//! Chat: one private session per booking, messages with receipts, typing indicators.
//!
//! Words, as every file uses them: a **member** is one of a session's two users; a
//! **receipt** is a member's row of `chat_members` (`receipts::Receipt`; the GraphQL type
//! `ChatMember`); a **horizon** is one of a receipt's two seqs, delivered or read.
//!
//! One job per file, each depending only on files listed before it:
//!
//! - `receipts`: what a receipt is: its names, its horizons, the members of a session.
//! - `notices`: what chat tells people in their inbox.
//! - `plan`: checking a batch of sends and deciding what each becomes.
//! - `locked`: locking a batch's sessions and reading what it needs in one statement.
//! - `batch`: the batch writer, `MessageBatch`: a batch of messages in one transaction.
//! - `send_queue`: group commit: gathers `sendMessage` calls into batches for the writer.
//! - `service`: `ChatService`: sessions, reading messages, receipts, system lines.
//! - `typing`: which typing indicators are passed on.
//! - `loaders`: each booking's chat, batched across a page.
//! - `graphql`: the chat types, queries and mutations, and `Booking.chatSession`.
//! - `subscription`: the live streams.

mod batch;
mod graphql;
mod loaders;
mod locked;
mod notices;
mod plan;
mod receipts;
mod send_queue;
mod service;
mod subscription;
mod typing;

pub use graphql::{ChatMutation, ChatQuery};
pub use loaders::SessionByBookingLoader;
pub use plan::{NewMessage, SendRequest};
pub use receipts::Horizon;
pub use send_queue::SendQueue;
pub use service::ChatService;
pub use subscription::ChatSubscription;
pub use typing::TypingGate;
