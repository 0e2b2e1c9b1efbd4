//! The query conditions that keep a viewer to their own rows, written once for every table
//! with two parties (bookings, chats, calls).

use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, Select, Value};
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

/// The rows of `E` that `user` is a party to (`parties` names its two party columns), only
/// those whose `status` column holds the given value when one is given: where every "my
/// bookings", "my calls" list starts.
pub fn rows_of<E: EntityTrait>(
    parties: [E::Column; 2],
    user: Uuid,
    status: Option<(E::Column, impl Into<Value>)>,
) -> Select<E> {
    let [first, second] = parties;
    let mine = E::find().filter(either_party(first, second, user));
    match status {
        Some((column, value)) => mine.filter(column.eq(value)),
        None => mine,
    }
}
