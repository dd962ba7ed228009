//! Protobuf to domain and back. Nothing here decides anything.

use switchyard_api::presence::v1 as pb;
use switchyard_platform::proto_json::timestamp;

use crate::biz::{
    engine::Diff,
    input::MetasInput,
    model::{Device, Location, Shopping},
    tracker::Member,
    view::{ConnectionView, Detail, Presence},
    watch::WatchItem,
};

pub fn device(device: Option<pb::Device>) -> Device {
    let device = device.unwrap_or_default();
    Device {
        id: device.id,
        kind: device.r#type,
        os: device.os,
        app_version: device.app_version,
    }
}

fn shopping(shopping: pb::ShoppingActivity) -> Shopping {
    Shopping {
        viewing_product: shopping.viewing_product,
        cart_items: shopping.cart_items,
        in_checkout: shopping.in_checkout,
    }
}

fn location(location: pb::Location) -> Location {
    Location {
        country: location.country,
        city: location.city,
    }
}

pub fn metas(metas: Option<pb::Metas>) -> MetasInput {
    let metas = metas.unwrap_or_default();
    MetasInput {
        status: metas.status,
        page: metas.current_page,
        shopping: metas.shopping_activity.map(shopping),
        location: metas.location.map(location),
        quality: metas.connection_quality,
    }
}

/// `UpdatePresence`: `metas` first, the seed's flat fields where `metas` is silent.
pub fn update_metas(request: &pb::UpdatePresenceRequest) -> MetasInput {
    let mut input = metas(request.metas.clone());
    let flat = |text: &str| Some(text.to_owned()).filter(|text| !text.is_empty());
    input.status = input.status.or_else(|| flat(&request.status));
    input.page = input.page.or_else(|| flat(&request.current_page));
    input.shopping = input
        .shopping
        .or_else(|| request.shopping_activity.clone().map(shopping));
    input.location = input.location.or_else(|| request.location.clone().map(location));
    input
}

fn shopping_out(shopping: Option<Shopping>) -> Option<pb::ShoppingActivity> {
    shopping.map(|shopping| pb::ShoppingActivity {
        viewing_product: shopping.viewing_product,
        cart_items: shopping.cart_items,
        in_checkout: shopping.in_checkout,
    })
}

fn location_out(location: Option<Location>) -> Option<pb::Location> {
    location.map(|location| pb::Location {
        country: location.country,
        city: location.city,
    })
}

fn connection(view: ConnectionView) -> pb::Connection {
    pb::Connection {
        connection_id: view.id,
        node: view.node,
        device: Some(pb::Device {
            id: view.device.id,
            r#type: view.device.kind,
            os: view.device.os,
            app_version: view.device.app_version,
        }),
        connected_time: timestamp(view.connected_ms),
        last_active_time: timestamp(view.active_ms),
        status: view.status,
        current_page: view.page,
        shopping_activity: shopping_out(view.shopping),
        location: location_out(view.location),
        connection_quality: view.quality,
        reconnecting: view.reconnecting,
    }
}

/// A batch read's `view`; None for a number this API does not define.
pub fn detail(view: i32) -> Option<Detail> {
    match pb::PresenceView::try_from(view).ok()? {
        pb::PresenceView::Full => Some(Detail::Connections),
        pb::PresenceView::Unspecified | pb::PresenceView::Basic => Some(Detail::Summary),
    }
}

/// Zero times mean "never": left unset.
fn time(ms: i64) -> Option<pbjson_types::Timestamp> {
    if ms <= 0 { None } else { timestamp(ms) }
}

/// Takes the view apart: a batch read maps a thousand of them, so nothing is copied.
pub fn presence(presence: Presence) -> pb::Presence {
    pb::Presence {
        user_id: presence.user,
        online: presence.online,
        status: presence.status,
        device_count: presence.device_count as i32,
        last_seen_time: time(presence.last_seen_ms),
        last_active_time: time(presence.last_active_ms),
        current_page: presence.page,
        shopping_activity: shopping_out(presence.shopping),
        location: location_out(presence.location),
        connections: presence.connections.into_iter().map(connection).collect(),
        sequence: presence.sequence,
    }
}

pub fn member(member: &Member) -> pb::ChannelMember {
    pb::ChannelMember {
        user_id: member.user.clone(),
        connections: member.connections as i32,
        status: member.status.clone(),
    }
}

fn diff(diff: &Diff, sequence: u64) -> pb::PresenceDiff {
    pb::PresenceDiff {
        r#type: diff.kind.as_str().to_owned(),
        user_id: diff.user.clone(),
        channel: diff.channel.clone().unwrap_or_default(),
        sequence,
        presence: Some(presence(diff.presence.clone())),
        time: timestamp(diff.at_ms),
    }
}

pub fn watch_item(item: &WatchItem) -> pb::PresenceEvent {
    match item {
        WatchItem::Snapshot {
            cursor,
            users,
            channels,
        } => pb::PresenceEvent {
            cursor: cursor.to_string(),
            kind: Some(pb::presence_event::Kind::Snapshot(pb::PresenceSnapshot {
                users: users.iter().cloned().map(presence).collect(),
                channels: channels
                    .iter()
                    .map(|(channel, members)| pb::ChannelSnapshot {
                        channel: channel.clone(),
                        members: members.iter().map(member).collect(),
                    })
                    .collect(),
            })),
        },
        WatchItem::Diff { cursor, diff: change } => {
            // Channel events are ordered by the log; user events by the user's sequence.
            let sequence = match change.channel {
                Some(_) => {
                    let (ms, seq) = cursor.position();
                    ms.saturating_mul(1_000_000).saturating_add(seq)
                }
                None => change.presence.sequence,
            };
            pb::PresenceEvent {
                cursor: cursor.to_string(),
                kind: Some(pb::presence_event::Kind::Diff(diff(change, sequence))),
            }
        }
    }
}
