//! How each backend takes a batch's lists, so that its statements keep a few fixed texts.
//!
//! A statement built from a list grows with it: `IN (?, …, ?)`, n arms of `OR` or `CASE`, n
//! rows of `VALUES`. One text per batch size meant that nearly every batch's statements were
//! new to the connection's statement cache.
//!
//! On SQLite, which then prepared them afresh (8% of the server's CPU in the write path),
//! lists are rounded up to powers of two: each statement has nine shapes for batches of up
//! to 256, and they stay prepared.
//!
//! On PostgreSQL a list is one array parameter (`= ANY($1)`, `unnest`), whatever its length.
//! Written out, a list of 256 pairs was an `OR` of 256 index scans, each with its own memory,
//! which PostgreSQL planned and set up anew for every batch: page faults and `memset` alone
//! were over a third of its CPU in chat fan-out. Rounded shapes were tried there and left:
//! repeating texts go over to generic plans, which PostgreSQL chose while the tables were
//! small (scans comparing every row with every parameter).

use super::Write;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait,
    Value,
    sea_query::{Expr, postgres_array::NotU8},
};

/// How one backend's batch statements are shaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchShape {
    /// SQLite: lists padded to a power of two, inserts in runs of powers of two.
    Rounded,
    /// PostgreSQL: a list is one array parameter.
    Arrays,
}

impl BatchShape {
    /// The shape for the backend behind `conn`.
    pub fn of(conn: &impl ConnectionTrait) -> Self {
        match conn.get_database_backend() {
            DbBackend::Sqlite => Self::Rounded,
            _ => Self::Arrays,
        }
    }

    /// `items`, on SQLite with its last element repeated up to the next power of two: for
    /// lists in which a repeat changes nothing (`IN`, `OR`, `CASE` arms).
    pub fn list<T: Clone>(self, items: impl IntoIterator<Item = T>) -> Vec<T> {
        let mut items: Vec<T> = items.into_iter().collect();
        if let (Self::Rounded, Some(last)) = (self, items.last().cloned()) {
            items.resize(items.len().next_power_of_two(), last);
        }
        items
    }

    /// `column IN (values)`: `column = ANY($1)` on PostgreSQL.
    pub fn is_in<V>(self, column: impl ColumnTrait, values: impl IntoIterator<Item = V>) -> Expr
    where
        V: Into<Value> + Clone + NotU8,
    {
        match self {
            Self::Rounded => column.is_in(self.list(values)),
            Self::Arrays => column.eq_any(values),
        }
    }

    /// Rows whose two columns match any of the pairs: `(a = ? AND b = ?) OR …`, each pair
    /// on an index, or on PostgreSQL `(a, b) IN (SELECT * FROM unnest($1, $2))`.
    pub fn pair_in<A, B>(
        self,
        (first, second): (impl ColumnTrait, impl ColumnTrait),
        pairs: impl IntoIterator<Item = (A, B)>,
    ) -> Condition
    where
        A: Into<Value> + Clone,
        B: Into<Value> + Clone,
    {
        match self {
            Self::Rounded => self
                .list(pairs)
                .into_iter()
                .fold(Condition::any(), |any, (a, b)| {
                    any.add(Condition::all().add(first.eq(a)).add(second.eq(b)))
                }),
            Self::Arrays => {
                let (firsts, seconds): (Vec<Value>, Vec<Value>) =
                    pairs.into_iter().map(|(a, b)| (a.into(), b.into())).unzip();
                match (array(firsts), array(seconds)) {
                    (Some(firsts), Some(seconds)) => Condition::all().add(Expr::cust_with_exprs(
                        "($1, $2) IN (SELECT * FROM unnest($3, $4))",
                        [
                            first.into_expr(),
                            second.into_expr(),
                            Expr::val(firsts),
                            Expr::val(seconds),
                        ],
                    )),
                    // No pairs: an empty `OR`, which matches no row.
                    _ => Condition::any(),
                }
            }
        }
    }

    /// `items` in the runs one insert each takes: on SQLite, runs whose lengths are powers
    /// of two, longest first (45 rows: 32, 8, 4, 1), since a repeated row would be a second
    /// row; elsewhere, all of them at once.
    pub fn runs<T>(self, items: &[T]) -> impl Iterator<Item = &[T]> {
        let mut rest = items;
        std::iter::from_fn(move || {
            let whole = rest.len().checked_ilog2()?;
            let (run, tail) = rest.split_at(match self {
                Self::Rounded => 1 << whole,
                Self::Arrays => rest.len(),
            });
            rest = tail;
            Some(run)
        })
    }

    /// Inserts one row per item, without reading them back, one statement per run.
    pub async fn insert<T, A>(
        self,
        write: &Write,
        items: &[T],
        row: impl Fn(&T) -> A,
    ) -> Result<(), DbErr>
    where
        A: ActiveModelTrait,
    {
        for run in self.runs(items) {
            A::Entity::insert_many(run.iter().map(&row))
                .exec_without_returning(write)
                .await?;
        }
        Ok(())
    }
}

/// One PostgreSQL array parameter holding `values`, all of one type; `None` when empty,
/// since an empty list has no element to take the type from.
pub fn array(values: Vec<Value>) -> Option<Value> {
    let element = values.first()?.array_type();
    Some(Value::Array(element, Some(Box::new(values))))
}

#[cfg(test)]
mod tests {
    use entity::message;
    use sea_orm::{QueryFilter, QueryTrait, Statement};
    use uuid::Uuid;

    use super::*;

    const SQLITE: BatchShape = BatchShape::Rounded;
    const POSTGRES: BatchShape = BatchShape::Arrays;

    #[test]
    fn lists_are_padded_with_their_last_element_on_sqlite_only() {
        assert_eq!(SQLITE.list([1, 2, 3]), [1, 2, 3, 3]);
        assert_eq!(SQLITE.list([1, 2, 3, 4, 5]), [1, 2, 3, 4, 5, 5, 5, 5]);
        assert_eq!(SQLITE.list([7]), [7]);
        assert!(SQLITE.list(Vec::<u8>::new()).is_empty());
        assert_eq!(POSTGRES.list([1, 2, 3]), [1, 2, 3]);
    }

    /// The statement a lookup of `n` ids and of `n` (sender, client id) pairs becomes.
    fn lookups(shape: BatchShape, backend: DbBackend, n: usize) -> [Statement; 2] {
        let ids: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
        let pairs = ids.iter().map(|id| (*id, id.to_string()));
        [
            message::Entity::find()
                .filter(shape.is_in(message::Column::Id, ids.clone()))
                .build(backend),
            message::Entity::find()
                .filter(shape.pair_in(
                    (message::Column::SenderId, message::Column::ClientMessageId),
                    pairs,
                ))
                .build(backend),
        ]
    }

    #[test]
    fn on_postgres_a_list_of_any_length_is_one_statement_with_array_parameters() {
        let [few_ids, few_pairs] = lookups(POSTGRES, DbBackend::Postgres, 3);
        let [many_ids, many_pairs] = lookups(POSTGRES, DbBackend::Postgres, 200);
        assert_eq!(few_ids.sql, many_ids.sql);
        assert!(few_ids.sql.ends_with(r#"WHERE "messages"."id" = ANY($1)"#));
        assert_eq!(few_pairs.sql, many_pairs.sql);
        assert!(few_pairs.sql.ends_with(
            r#"WHERE ("messages"."sender_id", "messages"."client_message_id") IN (SELECT * FROM unnest($1, $2))"#
        ));
        let lengths = |statement: &Statement| -> Vec<Option<usize>> {
            let values = statement
                .values
                .as_ref()
                .map_or(&[][..], |values| &values.0);
            values
                .iter()
                .map(|value| match value {
                    Value::Array(_, Some(items)) => Some(items.len()),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(lengths(&many_ids), [Some(200)]);
        assert_eq!(lengths(&many_pairs), [Some(200), Some(200)]);
    }

    #[test]
    fn on_sqlite_lists_of_lengths_up_to_the_same_power_of_two_share_a_statement() {
        let texts = |n| lookups(SQLITE, DbBackend::Sqlite, n).map(|statement| statement.sql);
        assert_eq!(texts(3), texts(4));
        assert_ne!(texts(4), texts(5));
        assert_eq!(texts(5), texts(8));
    }

    #[test]
    fn runs_cover_every_row_once_in_order() {
        let rows: Vec<u32> = (0..45).collect();
        for (shape, lengths) in [(SQLITE, vec![32, 8, 4, 1]), (POSTGRES, vec![45])] {
            let runs: Vec<&[u32]> = shape.runs(&rows).collect();
            assert_eq!(
                runs.iter().map(|run| run.len()).collect::<Vec<_>>(),
                lengths
            );
            assert_eq!(runs.concat(), rows);
            assert_eq!(shape.runs::<u32>(&[]).count(), 0);
        }
    }
}
