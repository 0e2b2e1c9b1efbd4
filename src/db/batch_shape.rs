//! On SQLite, statement shapes that do not depend on how many rows a batch holds.
//!
//! A statement built from a list grows with it: `IN (?, …, ?)`, n arms of `CASE`, n rows of
//! `VALUES`. One text per batch size meant that nearly every batch's statements were new to
//! the connection's statement cache, and SQLite prepared them afresh: 8% of the server's CPU
//! in the write path. Rounded to powers of two, each statement has nine shapes for batches of
//! up to 256, and they stay prepared.
//!
//! PostgreSQL keeps one statement per list. There each statement is a round trip with its
//! own trigger queue, and shapes that repeat go over to generic plans, which it chose while
//! the tables were small: scans comparing every row with every parameter. Shaped, PostgreSQL
//! spent 259 to 322 µs of CPU per message in the write path even with custom plans forced,
//! against 216 to 236 µs.

use sea_orm::{ActiveModelTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait};

/// How one backend's batch statements are shaped.
#[derive(Clone, Copy)]
pub struct BatchShape {
    rounded: bool,
}

impl BatchShape {
    /// The shape for the backend behind `conn`.
    pub fn of(conn: &impl ConnectionTrait) -> Self {
        Self {
            rounded: conn.get_database_backend() == DbBackend::Sqlite,
        }
    }

    /// `items`, on SQLite with its last element repeated up to the next power of two: for
    /// lists in which a repeat changes nothing (`IN`, `OR`, `CASE` arms).
    pub fn list<T: Clone>(self, items: impl IntoIterator<Item = T>) -> Vec<T> {
        let mut items: Vec<T> = items.into_iter().collect();
        if let (true, Some(last)) = (self.rounded, items.last().cloned()) {
            items.resize(items.len().next_power_of_two(), last);
        }
        items
    }

    /// `items` in the runs one insert each takes: on SQLite, runs whose lengths are powers
    /// of two, longest first (45 rows: 32, 8, 4, 1), since a repeated row would be a second
    /// row; elsewhere, all of them at once.
    pub fn runs<T>(self, items: &[T]) -> impl Iterator<Item = &[T]> {
        let mut rest = items;
        std::iter::from_fn(move || {
            let whole = rest.len().checked_ilog2()?;
            let (run, tail) = rest.split_at(if self.rounded { 1 << whole } else { rest.len() });
            rest = tail;
            Some(run)
        })
    }

    /// Inserts one row per item, without reading them back, one statement per run.
    pub async fn insert<T, A>(
        self,
        conn: &impl ConnectionTrait,
        items: &[T],
        row: impl Fn(&T) -> A,
    ) -> Result<(), DbErr>
    where
        A: ActiveModelTrait,
    {
        for run in self.runs(items) {
            A::Entity::insert_many(run.iter().map(&row))
                .exec_without_returning(conn)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SQLITE: BatchShape = BatchShape { rounded: true };
    const POSTGRES: BatchShape = BatchShape { rounded: false };

    #[test]
    fn lists_are_padded_with_their_last_element_on_sqlite_only() {
        assert_eq!(SQLITE.list([1, 2, 3]), [1, 2, 3, 3]);
        assert_eq!(SQLITE.list([1, 2, 3, 4, 5]), [1, 2, 3, 4, 5, 5, 5, 5]);
        assert_eq!(SQLITE.list([7]), [7]);
        assert!(SQLITE.list(Vec::<u8>::new()).is_empty());
        assert_eq!(POSTGRES.list([1, 2, 3]), [1, 2, 3]);
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
