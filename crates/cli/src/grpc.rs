//! What every command group's gRPC client shares: the API key (from `--api-key`, `SY_API_KEY`
//! or the file `switchyard dev` writes), a channel that connects on first use, and statuses
//! turned into errors a person can read (code, message, and every invalid field listed).

use std::path::Path;

use anyhow::Context as _;
use tonic::{
    Code, Request, Status,
    metadata::{Ascii, MetadataValue},
    service::Interceptor,
    transport::{Channel, Endpoint},
};
use tonic_types::StatusExt as _;

/// Where `switchyard dev` keeps the admin key of its data directory.
const DEV_KEY_FILE: &str = "data/admin-api-key";

/// Adds `authorization: Bearer <key>` to every request, or nothing when there is no key (for
/// calls that need none, such as flag evaluation); and a break-glass reason when one is given.
#[derive(Debug, Clone)]
pub struct Bearer {
    authorization: Option<MetadataValue<Ascii>>,
    break_glass: Option<MetadataValue<Ascii>>,
}

/// The header that carries a break-glass reason: it overrides a freeze window or an approval
/// policy for a key with the `emergency` scope.
const BREAK_GLASS_HEADER: &str = "x-switchyard-break-glass";

impl Bearer {
    pub fn new(key: Option<&str>) -> anyhow::Result<Self> {
        let authorization = key
            .map(|key| format!("Bearer {}", key.trim()).parse())
            .transpose()
            .context("the API key contains characters that cannot be sent in a header")?;
        Ok(Self {
            authorization,
            break_glass: None,
        })
    }

    /// Sends `reason` with every request as the break-glass reason.
    pub fn breaking_glass(mut self, reason: Option<&str>) -> anyhow::Result<Self> {
        self.break_glass = reason
            .map(str::parse)
            .transpose()
            .context("the break-glass reason must be visible ASCII (it travels in a header)")?;
        Ok(self)
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(header) = &self.authorization {
            request.metadata_mut().insert("authorization", header.clone());
        }
        if let Some(reason) = &self.break_glass {
            request.metadata_mut().insert(BREAK_GLASS_HEADER, reason.clone());
        }
        Ok(request)
    }
}

/// The key given, else the one `switchyard dev` wrote in the working directory, else none.
pub fn optional_key(given: Option<&str>) -> anyhow::Result<Option<String>> {
    if let Some(key) = given {
        return Ok(Some(key.trim().to_owned()));
    }
    match std::fs::read_to_string(Path::new(DEV_KEY_FILE)) {
        Ok(key) => Ok(Some(key.trim().to_owned())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("cannot read ./{DEV_KEY_FILE}")),
    }
}

/// As [`optional_key`], for calls that cannot go without one.
pub fn required_key(given: Option<&str>) -> anyhow::Result<String> {
    optional_key(given)?.ok_or_else(|| {
        anyhow::anyhow!(
            "no API key: pass --api-key, set SY_API_KEY, or run this where `switchyard dev` wrote ./{DEV_KEY_FILE}"
        )
    })
}

/// A channel to `server` that connects on first use (and again after the connection drops).
pub fn channel(server: &str) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(server.to_owned())
        .with_context(|| format!("--server {server} is not a URL"))?
        .connect_lazy())
}

/// The invalid fields a status lists, as `field: description`.
pub fn violations(status: &Status) -> Vec<String> {
    let details = status.get_error_details();
    let Some(bad_request) = details.bad_request() else {
        return Vec::new();
    };
    bad_request
        .field_violations
        .iter()
        .map(|violation| format!("{}: {}", violation.field, violation.description))
        .collect()
}

/// A status as an error naming its code, with the fields it lists one per line. `unavailable`
/// says where the service was expected, added when it could not be reached.
pub fn failure(status: &Status, unavailable: &str) -> anyhow::Error {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    match status.code() {
        Code::Unavailable => text.push_str(&format!(" ({unavailable})")),
        Code::Unauthenticated => text.push_str(" (check --api-key / SY_API_KEY)"),
        _ => {}
    }
    for violation in violations(status) {
        text.push_str("\n  ");
        text.push_str(&violation);
    }
    anyhow::anyhow!(text)
}
