//! What a receipt is: one member's row of `chat_members`, holding how far they have received
//! and read a session as two horizons (seqs). Every other chat file names the row, its maps
//! and its horizons through this one, which depends on no other chat file.
//!
//! The row has one name in Rust, `Receipt`: "member" already means one of a session's two
//! users (the `members` of every chat event, `is_member`, `other_member`), and the bus event
//! already calls the row a receipt (`Event::ReceiptsMoved { receipt, .. }`). The table and
//! the GraphQL type keep their names (`chat_members`, `ChatMember`).

use std::collections::HashMap;

use entity::{chat_member, chat_session};
use sea_orm::sea_query::{Expr, ExprTrait};
use uuid::Uuid;

/// One member's receipt in one session: a row of `chat_members`, named for what chat code
/// does with it.
pub type Receipt = chat_member::Model;

/// Both members' receipts of one session, by user: what a message's status is read from.
pub type SessionReceipts = HashMap<Uuid, Receipt>;

/// Each session's receipts, by session and user: a batch of sends needs them all at once.
pub type Receipts = HashMap<Uuid, SessionReceipts>;

/// Which horizon of a receipt a mark moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Horizon {
    /// The member's client received the messages.
    Delivered,
    /// The member read them (which implies delivery).
    Read,
}

/// `CASE WHEN column < target THEN target ELSE column END`: a horizon that a concurrent
/// update may already have moved further is never moved back.
pub fn forward_only(column: chat_member::Column, target: impl Into<Expr>) -> Expr {
    let target = target.into();
    Expr::case(Expr::col(column).lt(target.clone()), target)
        .finally(Expr::col(column))
        .into()
}

/// The two members of a session: each has one receipt in it, and every event of the session
/// is published to both.
pub fn members(session: &chat_session::Model) -> [Uuid; 2] {
    [session.care_recipient_id, session.caregiver_id]
}
