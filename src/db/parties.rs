//! Tables whose every row belongs to two users (bookings, calls, chats), who alone may see it:
//! the conditions that keep a viewer to their own rows, and the reads every such table
//! answers the same way.

use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, Order, PrimaryKeyTrait, QueryFilter,
    Value,
};
use uuid::Uuid;

use crate::{
    error::AppError,
    paging::{PageRequest, TimeCursor},
};

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

/// A table whose rows belong to two parties and that each party lists, newest or soonest
/// first, optionally by status.
pub trait PartyTable: EntityTrait<PrimaryKey: PrimaryKeyTrait<ValueType = Uuid>> {
    /// The two columns that hold the parties.
    const PARTIES: [Self::Column; 2];
    /// The column a list may be narrowed by.
    const STATUS: Self::Column;
    /// The list's order: a timestamp column, ties broken by id, in one direction.
    const LISTED_BY: (Self::Column, Self::Column, Order);
    /// What a row is called in a `NOT_FOUND` error.
    const NOUN: &'static str;

    /// Where `row` stands in the list.
    fn position(row: &Self::Model) -> TimeCursor;
}

/// Declares an entity of the `entity` crate a [`PartyTable`], in one line per fact: its two
/// party columns, its status column, the column it is listed by (and that column's model
/// field, for the cursor) with the list's direction, and its name in errors.
macro_rules! party_table {
    ($table:ident {
        parties: [$first:ident, $second:ident],
        status: $status:ident,
        listed_by: ($at:ident, $at_field:ident, $order:ident),
        noun: $noun:literal $(,)?
    }) => {
        impl $crate::db::parties::PartyTable for entity::$table::Entity {
            const PARTIES: [entity::$table::Column; 2] = [
                entity::$table::Column::$first,
                entity::$table::Column::$second,
            ];
            const STATUS: entity::$table::Column = entity::$table::Column::$status;
            const LISTED_BY: (
                entity::$table::Column,
                entity::$table::Column,
                sea_orm::Order,
            ) = (
                entity::$table::Column::$at,
                entity::$table::Column::Id,
                sea_orm::Order::$order,
            );
            const NOUN: &'static str = $noun;

            fn position(row: &entity::$table::Model) -> $crate::paging::TimeCursor {
                $crate::paging::TimeCursor {
                    at: row.$at_field,
                    id: row.id,
                }
            }
        }
    };
}
pub(crate) use party_table;

/// The row `id` if `user` is one of its parties; `NOT_FOUND` for everyone else, who must not
/// learn that it exists.
pub async fn find_for<T: PartyTable>(
    conn: &impl ConnectionTrait,
    user: Uuid,
    id: Uuid,
) -> Result<T::Model, AppError> {
    let [first, second] = T::PARTIES;
    T::find_by_id(id)
        .filter(either_party(first, second, user))
        .one(conn)
        .await?
        .ok_or(AppError::NotFound(T::NOUN))
}

/// One page of `user`'s rows, only those in `status` when one is given.
pub async fn page_for<T: PartyTable>(
    conn: &impl ConnectionTrait,
    user: Uuid,
    status: Option<impl Into<Value>>,
    page: &PageRequest<TimeCursor>,
) -> Result<Vec<T::Model>, AppError> {
    let [first, second] = T::PARTIES;
    let mine = T::find().filter(either_party(first, second, user));
    let narrowed = match status {
        Some(status) => mine.filter(T::STATUS.eq(status)),
        None => mine,
    };
    let (at, id, order) = T::LISTED_BY;
    Ok(page.select(narrowed, at, id, order).all(conn).await?)
}
