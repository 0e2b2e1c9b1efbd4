//! The GraphQL face of delivery: the viewer's devices and their delivery settings.

use std::sync::Arc;

use async_graphql::{Context, Enum, InputObject, Object, OneofObject, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{device, enums::DevicePlatform};
use uuid::Uuid;

use super::{
    Delivery,
    devices::{DeviceService, NewDevice},
    settings::{DeliverySettings, QuietHours, SettingsService},
};
use crate::{
    error::AppError,
    state::{AppState, write_as_viewer},
    viewer::viewer,
};

/// A device the viewer's pushes go to. Its token never comes back whole.
pub struct Device(device::Model);

#[Object]
impl Device {
    async fn id(&self) -> Uuid {
        self.0.id
    }

    async fn platform(&self) -> DevicePlatform {
        self.0.platform
    }

    /// What the app called it ("Rita's iPhone").
    async fn label(&self) -> Option<&str> {
        self.0.label.as_deref()
    }

    /// The last six characters of the token (or of the Web Push endpoint), to tell devices
    /// apart.
    async fn token_hint(&self) -> String {
        let chars: Vec<char> = self.0.token.chars().collect();
        let tail: String = chars[chars.len().saturating_sub(6)..].iter().collect();
        format!("…{tail}")
    }

    /// APNs only: a development build's token, sent through Apple's sandbox.
    async fn apns_environment(&self) -> Option<ApnsEnvironment> {
        self.0.apns_sandbox.map(|sandbox| {
            if sandbox {
                ApnsEnvironment::Sandbox
            } else {
                ApnsEnvironment::Production
            }
        })
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When a push was last accepted for it, or it was last registered.
    async fn last_used_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_used_at
    }
}

/// Which APNs gateway a token belongs to.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum ApnsEnvironment {
    /// A development build (Xcode): Apple's sandbox gateway.
    Sandbox,
    /// A TestFlight or App Store build.
    Production,
}

/// One device to register: exactly one of the three kinds.
#[derive(OneofObject)]
pub enum RegisterDeviceInput {
    /// An FCM registration token: Android, iOS through Firebase, or web through Firebase.
    Fcm(FcmDeviceInput),
    /// An APNs device token, for an iOS app sending through Apple directly.
    Apns(ApnsDeviceInput),
    /// A browser's Web Push subscription: pass `PushSubscription.toJSON()` as it is.
    WebPush(WebPushSubscriptionInput),
}

#[derive(InputObject)]
pub struct FcmDeviceInput {
    pub token: String,
    pub label: Option<String>,
}

#[derive(InputObject)]
pub struct ApnsDeviceInput {
    /// The device token as hex (64 digits today).
    pub token: String,
    /// The app's bundle id, the `apns-topic` its pushes are sent with.
    pub bundle_id: String,
    pub environment: ApnsEnvironment,
    pub label: Option<String>,
}

#[derive(InputObject)]
pub struct WebPushSubscriptionInput {
    /// The push service's https URL.
    pub endpoint: String,
    /// Ignored: a browser reports when its subscription lapses by failing the push.
    pub expiration_time: Option<f64>,
    pub keys: WebPushKeysInput,
    pub label: Option<String>,
}

#[derive(InputObject)]
pub struct WebPushKeysInput {
    /// The browser's P-256 public key, base64url.
    #[graphql(name = "p256dh")]
    pub p256dh: String,
    /// The 16-byte authentication secret, base64url.
    pub auth: String,
}

/// How the viewer's pushes read and when they may arrive.
#[derive(SimpleObject)]
#[graphql(name = "DeliverySettings")]
pub struct DeliverySettingsObject {
    /// Whether a message push shows what was written; off, it says only who wrote.
    pub message_previews: bool,
    /// Pushes other than video call requests wait while these last, in the viewer's time
    /// zone.
    pub quiet_hours: Option<QuietHoursObject>,
}

/// A daily span as "HH:MM" in the viewer's time zone; start after end spans midnight.
#[derive(SimpleObject)]
#[graphql(name = "QuietHours")]
pub struct QuietHoursObject {
    pub start: String,
    pub end: String,
}

#[derive(InputObject)]
pub struct QuietHoursInput {
    pub start: String,
    pub end: String,
}

#[derive(InputObject)]
pub struct DeliverySettingsInput {
    /// Unset: unchanged.
    pub message_previews: Option<bool>,
    /// Unset: unchanged; null: no quiet hours.
    pub quiet_hours: async_graphql::MaybeUndefined<QuietHoursInput>,
}

impl From<DeliverySettings> for DeliverySettingsObject {
    fn from(settings: DeliverySettings) -> Self {
        DeliverySettingsObject {
            message_previews: settings.message_previews,
            quiet_hours: settings.quiet_hours.map(|quiet| QuietHoursObject {
                start: quiet.start.format("%H:%M").to_string(),
                end: quiet.end.format("%H:%M").to_string(),
            }),
        }
    }
}

#[derive(Default)]
pub struct DeliveryQuery;

#[Object]
impl DeliveryQuery {
    /// The viewer's registered devices, most recently used first.
    async fn devices(&self, ctx: &Context<'_>) -> Result<Vec<Device>, AppError> {
        let viewer = viewer(ctx)?;
        let devices = DeviceService::list(&AppState::of(ctx).db, viewer.id).await?;
        Ok(devices.into_iter().map(Device).collect())
    }

    /// The key a browser subscribes with (`pushManager.subscribe({ applicationServerKey })`):
    /// this server's VAPID public key, base64url; null when it does not send Web Push.
    async fn web_push_public_key(&self, ctx: &Context<'_>) -> Option<String> {
        ctx.data_unchecked::<Arc<Delivery>>()
            .providers
            .web_push_public_key
            .clone()
    }

    /// The viewer's message previews and quiet hours.
    async fn delivery_settings(
        &self,
        ctx: &Context<'_>,
    ) -> Result<DeliverySettingsObject, AppError> {
        let viewer = viewer(ctx)?;
        Ok(SettingsService::get(&AppState::of(ctx).db, viewer.id)
            .await?
            .into())
    }
}

#[derive(Default)]
pub struct DeliveryMutation;

#[Object]
impl DeliveryMutation {
    /// Registers a device for the viewer's pushes. A token registered by another user moves
    /// to the viewer; registering the same token again updates it. A server that does not
    /// send to the platform refuses with `BAD_USER_INPUT`.
    async fn register_device(
        &self,
        ctx: &Context<'_>,
        input: RegisterDeviceInput,
    ) -> Result<Device, AppError> {
        let delivery = ctx.data_unchecked::<Arc<Delivery>>();
        let (new, label) = match input {
            RegisterDeviceInput::Fcm(fcm) => (NewDevice::Fcm { token: fcm.token }, fcm.label),
            RegisterDeviceInput::Apns(apns) => (
                NewDevice::Apns {
                    token: apns.token,
                    bundle_id: apns.bundle_id,
                    sandbox: apns.environment == ApnsEnvironment::Sandbox,
                },
                apns.label,
            ),
            RegisterDeviceInput::WebPush(web) => (
                NewDevice::WebPush {
                    endpoint: web.endpoint,
                    p256dh: web.keys.p256dh,
                    auth: web.keys.auth,
                },
                web.label,
            ),
        };
        let platform = new.platform();
        if delivery.providers.push(platform).is_none() {
            return Err(AppError::bad_input(
                "input",
                format!(
                    "this server does not send {} pushes",
                    platform_name(platform)
                ),
            ));
        }
        let allow_loopback = delivery.allow_loopback_endpoints;
        let device = write_as_viewer(ctx, async |write, viewer| {
            DeviceService::register(write, viewer, new, label, allow_loopback).await
        })
        .await?;
        Ok(Device(device))
    }

    /// Removes one of the viewer's devices: call it when the user signs out on that device,
    /// so their pushes stop reaching it.
    async fn unregister_device(&self, ctx: &Context<'_>, id: Uuid) -> Result<bool, AppError> {
        write_as_viewer(ctx, async |write, viewer| {
            DeviceService::unregister(write, viewer, id).await
        })
        .await?;
        Ok(true)
    }

    /// Changes the viewer's message previews and quiet hours; unset fields stay as they are.
    async fn update_delivery_settings(
        &self,
        ctx: &Context<'_>,
        input: DeliverySettingsInput,
    ) -> Result<DeliverySettingsObject, AppError> {
        let quiet = match &input.quiet_hours {
            async_graphql::MaybeUndefined::Value(quiet) => {
                Some(Some(QuietHours::parse(&quiet.start, &quiet.end)?))
            }
            async_graphql::MaybeUndefined::Null => Some(None),
            async_graphql::MaybeUndefined::Undefined => None,
        };
        let settings = write_as_viewer(ctx, async |write, viewer| {
            let mut settings = SettingsService::get(write, viewer.id).await?;
            if let Some(previews) = input.message_previews {
                settings.message_previews = previews;
            }
            if let Some(quiet) = quiet {
                settings.quiet_hours = quiet;
            }
            SettingsService::set(write, viewer.id, &settings).await?;
            Ok(settings)
        })
        .await?;
        Ok(settings.into())
    }
}

/// How a platform is named in messages.
fn platform_name(platform: DevicePlatform) -> &'static str {
    match platform {
        DevicePlatform::Fcm => "FCM",
        DevicePlatform::Apns => "APNs",
        DevicePlatform::WebPush => "Web Push",
    }
}
