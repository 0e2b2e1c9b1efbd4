//! Creating notifications inside other domains' transactions, and the inbox operations.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use chrono::{DateTime, Utc};
use entity::{
    enums::{Channel, NotificationType},
    notification, notification_delivery, notification_feed,
};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, IntoActiveModel, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
    sea_query::{Alias, Expr, ExprTrait, OnConflict},
};
use uuid::Uuid;

use super::{outbox::enqueue_deliveries, preferences::PreferenceService};
use crate::{
    bus::{Event, counter::Count},
    db::Write,
    db::batch_shape::BatchShape,
    error::AppError,
    paging::{PageRequest, SeqCursor},
};

/// A notification to create, as a domain describes it.
#[derive(Debug, Clone)]
pub struct Notice {
    pub user_id: Uuid,
    pub kind: NotificationType,
    pub title: String,
    pub body: String,
    pub data: serde_json::Value,
    /// Names the event, so a retried or repeated event notifies nobody twice.
    pub dedupe_key: Option<String>,
}

/// The in-app inbox.
pub struct NotificationService;

impl NotificationService {
    /// Stores `notice` for its user in the caller's transaction, unless they switched its type
    /// off in-app or the same event already notified them. Returns what was stored.
    pub async fn notify(
        write: &Write,
        notice: Notice,
    ) -> Result<Option<notification::Model>, AppError> {
        Self::store(write, notice).await
    }

    /// [`Self::notify`] for notices whose dedupe keys name something created in this very
    /// transaction (a message's new seq), which therefore cannot have notified anyone yet.
    /// However many notices, it costs three statements (on SQLite, up to nine runs for each
    /// insert): a batch of sends pays once.
    pub async fn notify_all_first_time(
        write: &Write,
        notices: Vec<Notice>,
    ) -> Result<(), AppError> {
        let now = write.now();
        let wanted: Vec<(Uuid, NotificationType)> = notices
            .iter()
            .map(|notice| (notice.user_id, notice.kind))
            .collect();
        let enabled = PreferenceService::enabled_all(write, &wanted, Channel::InApp).await?;
        let notices: Vec<Notice> = notices
            .into_iter()
            .zip(enabled)
            .filter_map(|(notice, enabled)| enabled.then_some(notice))
            .collect();
        let mut counts: BTreeMap<Uuid, i64> = BTreeMap::new();
        for notice in &notices {
            *counts.entry(notice.user_id).or_default() += 1;
        }
        let mut before = Self::advance_feeds(write, &counts).await?;
        for (user_id, feed) in before.iter_mut() {
            let added = counts.get(user_id).copied().unwrap_or(0);
            feed.last_seq -= added;
            feed.unread_count -= added;
        }
        let mut stored = Vec::with_capacity(notices.len());
        for notice in notices {
            let feed = before
                .get_mut(&notice.user_id)
                .ok_or_else(|| AppError::Internal("the feed upsert missed a user".to_owned()))?;
            feed.last_seq += 1;
            feed.unread_count += 1;
            stored.push((Self::row(notice, feed.last_seq, now), feed.unread_count));
        }
        if stored.is_empty() {
            return Ok(());
        }
        BatchShape::of(write)
            .insert(write, &stored, |(row, _)| row.clone().into_active_model())
            .await?;
        let rows: Vec<&notification::Model> = stored.iter().map(|(row, _)| row).collect();
        enqueue_deliveries(write, &rows).await?;
        write.publish_all(
            stored
                .into_iter()
                .map(|(row, unread_count)| Event::NotificationAdded {
                    notification: Arc::new(row),
                    unread_count,
                }),
        );
        Ok(())
    }

    async fn store(write: &Write, notice: Notice) -> Result<Option<notification::Model>, AppError> {
        let now = write.now();
        if !PreferenceService::enabled(write, notice.user_id, notice.kind, Channel::InApp).await? {
            return Ok(None);
        }
        if Self::already_sent(write, &notice).await? {
            return Ok(None);
        }
        let feed = Self::next_seq(write, notice.user_id).await?;
        // Holding the feed row now, so a concurrent twin has either committed or waits for us.
        if Self::already_sent(write, &notice).await? {
            notification_feed::Entity::update_many()
                .col_expr(
                    notification_feed::Column::LastSeq,
                    Expr::col(notification_feed::Column::LastSeq).sub(1),
                )
                .filter(notification_feed::Column::UserId.eq(notice.user_id))
                .exec(write)
                .await?;
            Self::add_unread(write, notice.user_id, -1).await?;
            return Ok(None);
        }
        let stored = Self::row(notice, feed.last_seq, now);
        notification::Entity::insert(stored.clone().into_active_model())
            .exec_without_returning(write)
            .await?;
        enqueue_deliveries(write, &[&stored]).await?;
        write.publish(Event::NotificationAdded {
            notification: Arc::new(stored.clone()),
            unread_count: feed.unread_count,
        });
        Ok(Some(stored))
    }

    /// The push and email deliveries of one of `user_id`'s notifications, oldest first; none
    /// for anyone else's.
    pub async fn deliveries(
        conn: &impl ConnectionTrait,
        user_id: Uuid,
        notification_id: Uuid,
    ) -> Result<Vec<notification_delivery::Model>, AppError> {
        Ok(notification_delivery::Entity::find()
            .filter(notification_delivery::Column::NotificationId.eq(notification_id))
            .filter(notification_delivery::Column::UserId.eq(user_id))
            .order_by_asc(notification_delivery::Column::CreatedAt)
            .order_by_asc(notification_delivery::Column::Id)
            .all(conn)
            .await?)
    }

    /// The stored form of `notice`, unread, as the `seq`-th notification of its user.
    fn row(notice: Notice, seq: i64, now: DateTime<Utc>) -> notification::Model {
        notification::Model {
            id: Uuid::now_v7(),
            user_id: notice.user_id,
            seq,
            kind: notice.kind,
            title: notice.title,
            body: notice.body,
            data: notice.data,
            is_read: false,
            read_at: None,
            dedupe_key: notice.dedupe_key,
            created_at: now,
        }
    }

    async fn already_sent(conn: &impl ConnectionTrait, notice: &Notice) -> Result<bool, AppError> {
        let Some(key) = &notice.dedupe_key else {
            return Ok(false);
        };
        let found = notification::Entity::find()
            .filter(notification::Column::UserId.eq(notice.user_id))
            .filter(notification::Column::DedupeKey.eq(key.as_str()))
            .count(conn)
            .await?;
        Ok(found > 0)
    }

    /// The user's feed with the next seq handed out, counting the new notification as unread;
    /// the upsert holds their feed row until the transaction ends.
    async fn next_seq(write: &Write, user_id: Uuid) -> Result<notification_feed::Model, AppError> {
        let counts = BTreeMap::from([(user_id, 1)]);
        Self::advance_feeds(write, &counts)
            .await?
            .remove(&user_id)
            .ok_or_else(|| AppError::Internal("the feed upsert returned no row".to_owned()))
    }

    /// Hands out `count` seqs to each user, counted as unread, in upserts; returns each
    /// user's feed after it. Rows are locked in user order (the map's), so two transactions
    /// advancing overlapping sets of feeds cannot deadlock each other.
    async fn advance_feeds(
        write: &Write,
        counts: &BTreeMap<Uuid, i64>,
    ) -> Result<HashMap<Uuid, notification_feed::Model>, AppError> {
        let added = |column| {
            Expr::col((notification_feed::Entity, column))
                .add(Expr::col((Alias::new("excluded"), column)))
        };
        let counts: Vec<(Uuid, i64)> = counts.iter().map(|(user, count)| (*user, *count)).collect();
        let mut feeds = HashMap::with_capacity(counts.len());
        for run in BatchShape::of(write).runs(&counts) {
            let rows = run
                .iter()
                .map(|(user_id, count)| notification_feed::ActiveModel {
                    user_id: Set(*user_id),
                    last_seq: Set(*count),
                    unread_count: Set(*count),
                });
            let advanced = notification_feed::Entity::insert_many(rows)
                .on_conflict(
                    OnConflict::column(notification_feed::Column::UserId)
                        .value(
                            notification_feed::Column::LastSeq,
                            added(notification_feed::Column::LastSeq),
                        )
                        .value(
                            notification_feed::Column::UnreadCount,
                            added(notification_feed::Column::UnreadCount),
                        )
                        .to_owned(),
                )
                .exec_with_returning(write)
                .await?;
            feeds.extend(advanced.into_iter().map(|feed| (feed.user_id, feed)));
        }
        Ok(feeds)
    }

    /// Moves the user's unread count by `delta`, in the caller's transaction.
    async fn add_unread(write: &Write, user_id: Uuid, delta: i64) -> Result<(), AppError> {
        notification_feed::Entity::update_many()
            .col_expr(
                notification_feed::Column::UnreadCount,
                Expr::col(notification_feed::Column::UnreadCount).add(delta),
            )
            .filter(notification_feed::Column::UserId.eq(user_id))
            .exec(write)
            .await?;
        Ok(())
    }

    /// The newest seq handed out to the user, 0 before their first notification.
    pub async fn head(conn: &impl ConnectionTrait, user_id: Uuid) -> Result<i64, AppError> {
        Ok(Self::unread_at_head(conn, user_id).await?.position)
    }

    /// The user's notifications, newest first.
    pub async fn list(
        conn: &impl ConnectionTrait,
        user_id: Uuid,
        unread_only: bool,
        kinds: Option<Vec<NotificationType>>,
        page: &PageRequest<SeqCursor>,
    ) -> Result<Vec<notification::Model>, AppError> {
        let mut query = notification::Entity::find()
            .filter(notification::Column::UserId.eq(user_id))
            .order_by_desc(notification::Column::Seq)
            .limit(page.fetch_limit());
        if unread_only {
            query = query.filter(notification::Column::IsRead.eq(false));
        }
        if let Some(kinds) = kinds {
            query = query.filter(notification::Column::Kind.is_in(kinds));
        }
        if let Some(SeqCursor { seq: before, .. }) = page.after {
            query = query.filter(notification::Column::Seq.lt(before));
        }
        Ok(query.all(conn).await?)
    }

    /// The user's notifications stored after `seq`, oldest first: what a resuming
    /// `notificationAdded` subscriber missed.
    pub async fn stored_after(
        conn: &impl ConnectionTrait,
        user_id: Uuid,
        seq: i64,
        limit: u64,
    ) -> Result<Vec<notification::Model>, AppError> {
        Ok(notification::Entity::find()
            .filter(notification::Column::UserId.eq(user_id))
            .filter(notification::Column::Seq.gt(seq))
            .order_by_asc(notification::Column::Seq)
            .limit(limit)
            .all(conn)
            .await?)
    }

    /// How many of the user's notifications are unread.
    pub async fn unread_count(conn: &impl ConnectionTrait, user_id: Uuid) -> Result<i64, AppError> {
        Ok(Self::unread_at_head(conn, user_id).await?.value)
    }

    /// The unread count with the seq it is as of, read together from the feed row.
    pub async fn unread_at_head(
        conn: &impl ConnectionTrait,
        user_id: Uuid,
    ) -> Result<Count, AppError> {
        Ok(notification_feed::Entity::find_by_id(user_id)
            .one(conn)
            .await?
            .map_or(
                Count {
                    value: 0,
                    position: 0,
                },
                |feed| Count {
                    value: feed.unread_count,
                    position: feed.last_seq,
                },
            ))
    }

    /// One of the user's own notifications; anyone else's is `NOT_FOUND`.
    pub async fn find_own(
        conn: &impl ConnectionTrait,
        user_id: Uuid,
        id: Uuid,
    ) -> Result<notification::Model, AppError> {
        notification::Entity::find_by_id(id)
            .one(conn)
            .await?
            .filter(|notification| notification.user_id == user_id)
            .ok_or(AppError::NotFound("notification"))
    }

    /// Marks one notification read (`read = true`) or unread; a no-op when it already is.
    pub async fn set_read(
        write: &Write,
        user_id: Uuid,
        id: Uuid,
        read: bool,
    ) -> Result<notification::Model, AppError> {
        let now = write.now();
        let found = Self::find_own(write, user_id, id).await?;
        // Conditional, so two concurrent requests cannot both count the same change.
        let changed = notification::Entity::update_many()
            .col_expr(notification::Column::IsRead, Expr::value(read))
            .col_expr(
                notification::Column::ReadAt,
                Expr::value(read.then_some(now)),
            )
            .filter(notification::Column::Id.eq(found.id))
            .filter(notification::Column::IsRead.eq(!read))
            .exec(write)
            .await?
            .rows_affected;
        if changed == 0 {
            return Ok(found);
        }
        Self::add_unread(write, user_id, if read { -1 } else { 1 }).await?;
        write.publish(Event::NotificationsChanged { user_id });
        Self::find_own(write, user_id, id).await
    }

    /// Marks every unread notification of the user read; returns how many changed.
    pub async fn mark_all_read(write: &Write, user_id: Uuid) -> Result<u64, AppError> {
        Self::mark_read_where(write, user_id, Condition::all()).await
    }

    /// Marks read the user's unread notifications whose dedupe key starts with `prefix` and
    /// sorts at or before `up_to_key`: how reading a chat marks its message notifications.
    pub async fn mark_read_up_to_key(
        write: &Write,
        user_id: Uuid,
        prefix: &str,
        up_to_key: &str,
    ) -> Result<u64, AppError> {
        let keys = Condition::all()
            .add(notification::Column::DedupeKey.starts_with(prefix))
            .add(notification::Column::DedupeKey.lte(up_to_key));
        Self::mark_read_where(write, user_id, keys).await
    }

    /// Marks read the user's unread notifications that also match `filter`, keeping the
    /// unread count in step; returns how many changed.
    async fn mark_read_where(
        write: &Write,
        user_id: Uuid,
        filter: Condition,
    ) -> Result<u64, AppError> {
        let now = write.now();
        let changed = notification::Entity::update_many()
            .col_expr(notification::Column::IsRead, Expr::value(true))
            .col_expr(notification::Column::ReadAt, Expr::value(now))
            .filter(notification::Column::UserId.eq(user_id))
            .filter(notification::Column::IsRead.eq(false))
            .filter(filter)
            .exec(write)
            .await?
            .rows_affected;
        if changed > 0 {
            Self::add_unread(write, user_id, -(changed as i64)).await?;
            write.publish(Event::NotificationsChanged { user_id });
        }
        Ok(changed)
    }

    /// Deletes one of the user's notifications.
    pub async fn delete(write: &Write, user_id: Uuid, id: Uuid) -> Result<(), AppError> {
        let found = Self::find_own(write, user_id, id).await?;
        let deleted = notification::Entity::delete_by_id(found.id)
            .exec_with_returning(write)
            .await?
            .ok_or(AppError::NotFound("notification"))?;
        if !deleted.is_read {
            Self::add_unread(write, user_id, -1).await?;
        }
        write.publish(Event::NotificationsChanged { user_id });
        Ok(())
    }
}
