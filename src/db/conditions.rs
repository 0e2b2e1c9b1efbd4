//! The query conditions that keep a viewer to their own rows, written once for every table
//! with two parties (bookings, chats, calls).

use sea_orm::{ColumnTrait, Condition};
use uuid::Uuid;

/// Rows where `user` is either party: the filter of every list a viewer sees.
pub fn either_party(first: impl ColumnTrait, second: impl ColumnTrait, user: Uuid) -> Condition {
    Condition::any().add(first.eq(user)).add(second.eq(user))
}

/// Rows between exactly these two users, whichever side each is on.
pub fn between(first: impl ColumnTrait, second: impl ColumnTrait, users: [Uuid; 2]) -> Condition {
    let [a, b] = users;
    Condition::any()
        .add(Condition::all().add(first.eq(a)).add(second.eq(b)))
        .add(Condition::all().add(first.eq(b)).add(second.eq(a)))
}
