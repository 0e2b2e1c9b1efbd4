//! Keyset paging, shared by every list: page-size rules, the three kinds of cursor, the
//! condition that selects the rows after one, and the Relay connection a resolver returns.
//!
//! It sits below the domains: their services page with it and their resolvers present pages
//! with it, so no domain reaches up into the schema's assembly (`docs/architecture.md`).

use async_graphql::{
    OutputType,
    connection::{Connection, Edge},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect, Select,
};
use uuid::Uuid;

use crate::error::AppError;

/// The page size when `first` is omitted.
pub const DEFAULT_PAGE_SIZE: u64 = 20;
/// The largest `first` a client may ask for.
pub const MAX_PAGE_SIZE: u64 = 100;

/// A validated request for one page: how many rows, after which position.
#[derive(Debug)]
pub struct PageRequest<K> {
    pub limit: u64,
    pub after: Option<K>,
}

/// A requested page size (`first` or `last`): 0 to 100, 20 when omitted.
pub fn page_size(requested: Option<i32>, field: &'static str) -> Result<u64, AppError> {
    match requested {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(size) if (0..=MAX_PAGE_SIZE as i32).contains(&size) => Ok(size as u64),
        Some(_) => Err(AppError::bad_input(
            field,
            format!("{field} must be between 0 and {MAX_PAGE_SIZE}"),
        )),
    }
}

/// What a page costs in the query-complexity count: its children once per row it can
/// hold. A size out of range counts as the largest page; it is refused later anyway.
pub fn page_cost(requested: Option<i32>, child_complexity: usize) -> usize {
    let rows = match requested {
        None => DEFAULT_PAGE_SIZE,
        Some(size) => u64::try_from(size).map_or(MAX_PAGE_SIZE, |size| size.min(MAX_PAGE_SIZE)),
    };
    usize::try_from(rows)
        .unwrap_or(usize::MAX)
        .saturating_mul(child_complexity)
        .saturating_add(1)
}

/// A position in one list, encoded as an opaque cursor so clients cannot depend on its shape.
pub trait CursorKey: Sized {
    /// The plain text of the position; `decode` must accept exactly what this produces.
    fn to_plain(&self) -> String;
    fn from_plain(plain: &str) -> Option<Self>;

    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.to_plain())
    }

    fn decode(cursor: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
        Self::from_plain(std::str::from_utf8(&bytes).ok()?)
    }

    /// The position a cursor argument names, or `BAD_USER_INPUT` on `field` if it names none.
    fn from_argument(
        cursor: Option<String>,
        field: &'static str,
    ) -> Result<Option<Self>, AppError> {
        cursor
            .map(|cursor| {
                Self::decode(&cursor).ok_or_else(|| {
                    AppError::bad_input(field, format!("{field} is not a valid cursor"))
                })
            })
            .transpose()
    }
}

impl<K: CursorKey> PageRequest<K> {
    /// Checks `first` (0..=100, default 20) and decodes `after`.
    pub fn new(first: Option<i32>, after: Option<String>) -> Result<Self, AppError> {
        let limit = page_size(first, "first")?;
        let after = K::from_argument(after, "after")?;
        Ok(Self { limit, after })
    }

    /// How many rows to fetch: one more than the page, to learn whether another page follows.
    pub fn fetch_limit(&self) -> u64 {
        self.limit + 1
    }

    /// Builds the connection from up to `fetch_limit()` rows in list order.
    pub fn connection<T, N: OutputType>(
        &self,
        mut rows: Vec<T>,
        key: impl Fn(&T) -> K,
        mut node: impl FnMut(T) -> N,
    ) -> Connection<String, N> {
        let has_next = rows.len() as u64 > self.limit;
        rows.truncate(self.limit as usize);
        let mut connection = Connection::new(self.after.is_some(), has_next);
        connection.edges = rows
            .into_iter()
            .map(|row| Edge::new(key(&row).encode(), node(row)))
            .collect();
        connection
    }
}

/// A position in a list ordered by a sequence number of its own (a chat's messages, a user's
/// notifications), naming the list it belongs to (the chat, or the inbox's user): seqs of two
/// lists overlap, so a cursor of another list must be refused rather than read as a position
/// in this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqCursor {
    /// The id of the list's owner: the chat session, or the user whose inbox it is.
    pub scope: Uuid,
    pub seq: i64,
}

impl SeqCursor {
    /// The seq a cursor argument names in the list of `scope`, or `BAD_USER_INPUT` on `field`
    /// if it is not a cursor or is one of another list.
    pub fn seq_in(
        cursor: Option<String>,
        field: &'static str,
        scope: Uuid,
    ) -> Result<Option<i64>, AppError> {
        Self::from_argument(cursor, field)?
            .map(|cursor| cursor.in_scope(field, scope))
            .transpose()
    }

    /// This cursor's seq if it belongs to the list of `scope`; `BAD_USER_INPUT` on `field`
    /// otherwise.
    pub fn in_scope(self, field: &'static str, scope: Uuid) -> Result<i64, AppError> {
        if self.scope == scope {
            Ok(self.seq)
        } else {
            Err(AppError::bad_input(
                field,
                format!("{field} is a cursor of another list"),
            ))
        }
    }
}

impl CursorKey for SeqCursor {
    fn to_plain(&self) -> String {
        format!("seq:{}:{}", self.scope, self.seq)
    }

    fn from_plain(plain: &str) -> Option<Self> {
        let (scope, seq) = plain.strip_prefix("seq:")?.split_once(':')?;
        Some(Self {
            scope: Uuid::parse_str(scope).ok()?,
            seq: seq.parse().ok().filter(|seq| *seq >= 0)?,
        })
    }
}

impl PageRequest<SeqCursor> {
    /// Checks `first` (0..=100, default 20) and decodes `after`, refusing a cursor of a list
    /// other than the one of `scope`.
    pub fn in_scope(
        first: Option<i32>,
        after: Option<String>,
        scope: Uuid,
    ) -> Result<Self, AppError> {
        let page = Self::new(first, after)?;
        if let Some(after) = page.after {
            after.in_scope("after", scope)?;
        }
        Ok(page)
    }
}

/// A position in a list ordered by a timestamp, ties broken by id (bookings by start, calls
/// by creation, chats by latest activity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeCursor {
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

impl TimeCursor {
    /// The rows after this position in a list ordered by `at_column` then `id_column`, both
    /// in `order`.
    pub fn rows_after(
        &self,
        at_column: impl ColumnTrait,
        id_column: impl ColumnTrait,
        order: Order,
    ) -> Condition {
        let (at_after, id_after) = match order {
            Order::Desc => (at_column.lt(self.at), id_column.lt(self.id)),
            _ => (at_column.gt(self.at), id_column.gt(self.id)),
        };
        Condition::any()
            .add(at_after)
            .add(Condition::all().add(at_column.eq(self.at)).add(id_after))
    }
}

impl PageRequest<TimeCursor> {
    /// `query` as this page of a list ordered by `at_column` then `id_column`, both in
    /// `order`: the rows after the cursor, one more than the page (see [`Self::fetch_limit`]).
    pub fn select<E: EntityTrait>(
        &self,
        query: Select<E>,
        at_column: E::Column,
        id_column: E::Column,
        order: Order,
    ) -> Select<E> {
        let query = query
            .order_by(at_column, order.clone())
            .order_by(id_column, order.clone())
            .limit(self.fetch_limit());
        match &self.after {
            Some(after) => query.filter(after.rows_after(at_column, id_column, order)),
            None => query,
        }
    }
}

impl CursorKey for TimeCursor {
    fn to_plain(&self) -> String {
        format!("time:{}:{}", self.at.timestamp_micros(), self.id)
    }

    fn from_plain(plain: &str) -> Option<Self> {
        let (at, id) = plain.strip_prefix("time:")?.split_once(':')?;
        Some(Self {
            at: DateTime::from_timestamp_micros(at.parse().ok()?)?,
            id: Uuid::parse_str(id).ok()?,
        })
    }
}

/// A position in a list ordered by id alone (caregivers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdCursor(pub Uuid);

impl CursorKey for IdCursor {
    fn to_plain(&self) -> String {
        format!("id:{}", self.0)
    }

    fn from_plain(plain: &str) -> Option<Self> {
        Uuid::parse_str(plain.strip_prefix("id:")?)
            .ok()
            .map(IdCursor)
    }
}
