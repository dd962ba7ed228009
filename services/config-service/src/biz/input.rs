//! What every use case checks of its input the same way: text lengths, string maps, etags.
//! Over-long text is refused, never cut.

use std::collections::BTreeMap;

use super::error::{ConfigError, ConfigResult};

/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME: usize = 200;
/// Longest release message, in characters.
pub const MAX_MESSAGE: usize = 2000;

/// Refuses text longer than `max` characters instead of silently cutting it.
pub fn check_length(field: &str, text: &str, max: usize) -> ConfigResult<()> {
    if text.chars().nth(max).is_none() {
        return Ok(());
    }
    Err(ConfigError::invalid(field, format!("at most {max} characters")))
}

/// Checks a string map: bounded size, keys of a safe alphabet.
pub fn check_map(field: &str, map: &BTreeMap<String, String>, max: usize) -> ConfigResult<()> {
    if map.len() > max {
        return Err(ConfigError::invalid(field, format!("at most {max} entries")));
    }
    for key in map.keys() {
        let valid = !key.is_empty()
            && key.len() <= 128
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'));
        if !valid {
            return Err(ConfigError::invalid(
                &format!("{field}[{key}]"),
                "keys are 1-128 of A-Z a-z 0-9 _ - . /",
            ));
        }
    }
    Ok(())
}

/// Etags are the stored version as text.
pub fn parse_etag(etag: &str) -> ConfigResult<i64> {
    let text = etag.trim_matches('"');
    if text.is_empty() {
        return Err(ConfigError::invalid("etag", "required: the etag from the last read"));
    }
    text.parse().map_err(|_| {
        let shown: String = text.chars().take(40).collect();
        ConfigError::invalid(
            "etag",
            format!("`{shown}` is not an etag this service issued: send the etag from the last read"),
        )
    })
}

/// The etag of a stored version.
pub fn etag_of(version: i64) -> String {
    version.to_string()
}
