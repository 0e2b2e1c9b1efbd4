//! Which notifications reach a user by which channel: defaults, overrides, and the locked few.

use std::collections::{BTreeSet, HashMap};

use entity::{
    enums::{Channel, NotificationType},
    notification_preference,
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, Iterable, QueryFilter, Set, sea_query::OnConflict,
};
use uuid::Uuid;

use crate::{
    db::{Write, batch_shape::BatchShape},
    error::AppError,
};

/// One effective preference: what applies now, and whether it is the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preference {
    pub kind: NotificationType,
    pub channel: Channel,
    pub enabled: bool,
    pub is_default: bool,
    pub locked: bool,
}

/// Preferences per user, type and channel; only choices that differ need rows.
pub struct PreferenceService;

impl PreferenceService {
    /// How many preferences a user has: one per type and channel.
    pub fn count() -> usize {
        NotificationType::iter().count() * Channel::iter().count()
    }

    /// What a user gets when they never chose: everything in-app and by push, except the
    /// echo of their own profile edits and read receipts (the ticks already update live);
    /// by email what changes their plans, and messages still unread a while later, in a
    /// digest (never one email per message).
    pub fn default_enabled(kind: NotificationType, channel: Channel) -> bool {
        use NotificationType::*;
        match channel {
            Channel::InApp => kind != MessagesRead,
            Channel::Push => !matches!(kind, ProfileUpdated | MessagesRead),
            Channel::Email => matches!(
                kind,
                BookingCreated
                    | BookingSeriesCreated
                    | BookingAccepted
                    | BookingDeclined
                    | BookingCancelled
                    | BookingReminder
                    | MessageReceived
            ),
        }
    }

    /// Too important to switch off in the app: a booking that starts within the hour, and
    /// an incoming video call (it expires in minutes).
    pub fn is_locked(kind: NotificationType, channel: Channel) -> bool {
        channel == Channel::InApp
            && matches!(
                kind,
                NotificationType::BookingStartingSoon | NotificationType::VideoCallRequested
            )
    }

    /// Whether `user_id` wants `kind` by `channel`.
    pub async fn enabled(
        conn: &impl ConnectionTrait,
        user_id: Uuid,
        kind: NotificationType,
        channel: Channel,
    ) -> Result<bool, AppError> {
        let enabled = Self::enabled_all(conn, &[(user_id, kind)], channel).await?;
        Ok(enabled.first().copied().unwrap_or(false))
    }

    /// Whether each (user, type) wants `channel`, in at most one query however many there are.
    pub async fn enabled_all(
        conn: &impl ConnectionTrait,
        wanted: &[(Uuid, NotificationType)],
        channel: Channel,
    ) -> Result<Vec<bool>, AppError> {
        let open: BTreeSet<Uuid> = wanted
            .iter()
            .filter(|(_, kind)| !Self::is_locked(*kind, channel))
            .map(|(user_id, _)| *user_id)
            .collect();
        let chosen: HashMap<(Uuid, NotificationType), bool> = if open.is_empty() {
            HashMap::new()
        } else {
            notification_preference::Entity::find()
                .filter(BatchShape::of(conn).is_in(notification_preference::Column::UserId, open))
                .filter(notification_preference::Column::Channel.eq(channel))
                .all(conn)
                .await?
                .into_iter()
                .map(|row| ((row.user_id, row.kind), row.enabled))
                .collect()
        };
        Ok(wanted
            .iter()
            .map(|(user_id, kind)| {
                Self::is_locked(*kind, channel)
                    || chosen
                        .get(&(*user_id, *kind))
                        .copied()
                        .unwrap_or_else(|| Self::default_enabled(*kind, channel))
            })
            .collect())
    }

    /// Every type × channel with its effective value.
    pub async fn all(
        conn: &impl ConnectionTrait,
        user_id: Uuid,
    ) -> Result<Vec<Preference>, AppError> {
        let chosen: HashMap<(NotificationType, Channel), bool> =
            notification_preference::Entity::find()
                .filter(notification_preference::Column::UserId.eq(user_id))
                .all(conn)
                .await?
                .into_iter()
                .map(|row| ((row.kind, row.channel), row.enabled))
                .collect();
        Ok(NotificationType::iter()
            .flat_map(|kind| Channel::iter().map(move |channel| (kind, channel)))
            .map(|(kind, channel)| {
                let locked = Self::is_locked(kind, channel);
                let default = Self::default_enabled(kind, channel);
                let enabled = locked || chosen.get(&(kind, channel)).copied().unwrap_or(default);
                Preference {
                    kind,
                    channel,
                    enabled,
                    is_default: enabled == default,
                    locked,
                }
            })
            .collect())
    }

    /// Applies the user's choices, all or none: a locked one refuses the whole update.
    pub async fn update(
        write: &Write,
        user_id: Uuid,
        changes: &[(NotificationType, Channel, bool)],
    ) -> Result<(), AppError> {
        if changes
            .iter()
            .any(|(kind, channel, enabled)| !enabled && Self::is_locked(*kind, *channel))
        {
            return Err(AppError::bad_input(
                "preferences",
                "BOOKING_STARTING_SOON and VIDEO_CALL_REQUESTED cannot be switched off IN_APP: \
                 a booking starting within the hour or an incoming call must never go unnoticed",
            ));
        }
        for (kind, channel, enabled) in changes {
            notification_preference::Entity::insert(notification_preference::ActiveModel {
                user_id: Set(user_id),
                kind: Set(*kind),
                channel: Set(*channel),
                enabled: Set(*enabled),
                updated_at: Set(write.now()),
            })
            .on_conflict(
                OnConflict::columns([
                    notification_preference::Column::UserId,
                    notification_preference::Column::Kind,
                    notification_preference::Column::Channel,
                ])
                .update_columns([
                    notification_preference::Column::Enabled,
                    notification_preference::Column::UpdatedAt,
                ])
                .to_owned(),
            )
            .exec(write)
            .await?;
        }
        Ok(())
    }
}
