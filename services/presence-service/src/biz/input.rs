//! What presence accepts from callers and gateways. Every check names the field it refuses,
//! so a bad request is `INVALID_ARGUMENT` with field violations and changes nothing.

use std::fmt::Display;

use switchyard_platform::error::FieldViolation;

use super::model::{Device, Location, MetasPatch, Shopping, Status};

pub const MAX_ID: usize = 128;
pub const MAX_CHANNEL: usize = 255;
pub const MAX_PAGE: usize = 512;
/// Users per batch read or watch.
pub const MAX_USERS: usize = 1_000;
/// Channels per watch.
pub const MAX_CHANNELS: usize = 100;
pub const MAX_PAGE_SIZE: usize = 1_000;
pub const DEFAULT_PAGE_SIZE: usize = 100;
const MAX_CART_ITEMS: i32 = 10_000;
const DEVICE_TYPES: &[&str] = &["phone", "tablet", "desktop", "web", "tv", "other"];
const QUALITIES: &[&str] = &["good", "fair", "poor"];

/// `list[index]`: an item's place in a request.
#[derive(Debug, Clone, Copy)]
pub struct Indexed<'a>(pub &'a str, pub usize);

impl Display for Indexed<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.0, self.1)
    }
}

/// A field's path: its parent's path, then its own. Checks run on every event of every
/// batch, nearly all of them fine, so a path is spelled out only when a violation names it.
#[derive(Debug, Clone, Copy)]
pub struct Path<P, N>(pub P, pub N);

impl<P: Display, N: Display> Display for Path<P, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.0, self.1)
    }
}

/// Collects violations so one answer names every bad field.
#[derive(Debug, Default)]
pub struct Violations(pub Vec<FieldViolation>);

impl Violations {
    pub fn add(&mut self, field: impl Display, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field.to_string(), description));
    }

    pub fn into_result(self) -> Result<(), Vec<FieldViolation>> {
        if self.0.is_empty() { Ok(()) } else { Err(self.0) }
    }

    /// Text of at most `max` characters without control characters; `required` refuses "".
    pub fn text(&mut self, field: impl Display, value: &str, max: usize, required: bool) {
        if required && value.is_empty() {
            self.add(field, "required");
        } else if value.chars().count() > max {
            self.add(field, format!("at most {max} characters"));
        } else if value.chars().any(char::is_control) {
            self.add(field, "must not contain control characters");
        }
    }

    fn one_of(&mut self, field: impl Display, value: &str, allowed: &[&str]) {
        if !value.is_empty() && !allowed.contains(&value) {
            self.add(field, format!("must be one of: {}", allowed.join(", ")));
        }
    }
}

/// Metas as a caller sends them, before checks.
#[derive(Debug, Clone, Default)]
pub struct MetasInput {
    pub status: Option<String>,
    pub page: Option<String>,
    pub shopping: Option<Shopping>,
    pub location: Option<Location>,
    pub quality: Option<String>,
}

/// Checks metas under `prefix` (such as `metas.`). `offline` is accepted as a status only
/// when `allow_offline`, and then answers None for the status (the caller ends presence).
pub fn check_metas(
    violations: &mut Violations,
    prefix: impl Display + Copy,
    input: MetasInput,
    allow_offline: bool,
) -> (MetasPatch, bool) {
    let field = |name| Path(prefix, name);
    let mut offline = false;
    let status = match input.status.as_deref() {
        None => None,
        Some("offline") if allow_offline => {
            offline = true;
            None
        }
        Some(text) => {
            let status = Status::parse(text);
            if status.is_none() {
                let allowed = if allow_offline {
                    "online, away, busy, invisible or offline"
                } else {
                    "online, away, busy or invisible"
                };
                violations.add(field("status"), format!("must be {allowed}"));
            }
            status
        }
    };
    if let Some(page) = &input.page {
        violations.text(field("current_page"), page, MAX_PAGE, false);
    }
    if let Some(shopping) = &input.shopping {
        violations.text(
            field("shopping_activity.viewing_product"),
            &shopping.viewing_product,
            MAX_ID,
            false,
        );
        if !(0..=MAX_CART_ITEMS).contains(&shopping.cart_items) {
            violations.add(field("shopping_activity.cart_items"), format!("0 to {MAX_CART_ITEMS}"));
        }
    }
    let location = input.location.map(|location| Location {
        country: location.country.to_ascii_uppercase(),
        city: location.city,
    });
    if let Some(location) = &location {
        let country_ok = location.country.is_empty()
            || (location.country.len() == 2 && location.country.chars().all(|c| c.is_ascii_uppercase()));
        if !country_ok {
            violations.add(field("location.country"), "an ISO 3166-1 alpha-2 code such as BD");
        }
        violations.text(field("location.city"), &location.city, MAX_ID, false);
    }
    if let Some(quality) = &input.quality {
        violations.one_of(field("connection_quality"), quality, QUALITIES);
    }
    let patch = MetasPatch {
        status,
        page: input.page,
        shopping: input.shopping,
        location,
        quality: input.quality,
    };
    (patch, offline)
}

pub fn check_device(violations: &mut Violations, prefix: impl Display + Copy, device: &Device) {
    violations.text(Path(prefix, "id"), &device.id, MAX_ID, false);
    violations.one_of(Path(prefix, "type"), &device.kind, DEVICE_TYPES);
    violations.text(Path(prefix, "os"), &device.os, 64, false);
    violations.text(Path(prefix, "app_version"), &device.app_version, 64, false);
}

/// A list of user ids: each may itself be comma-separated (`?user_ids=a,b`).
pub fn user_ids(violations: &mut Violations, field: &str, raw: &[String], max: usize) -> Vec<String> {
    let ids: Vec<String> = raw
        .iter()
        .flat_map(|item| item.split(','))
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect();
    if ids.len() > max {
        violations.add(field, format!("at most {max} user ids"));
        return Vec::new();
    }
    for (index, id) in ids.iter().enumerate() {
        violations.text(Indexed(field, index), id, MAX_ID, true);
    }
    ids
}
