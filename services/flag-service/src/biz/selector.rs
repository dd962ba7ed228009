//! flagd's selector: which flags a caller sees.
//!
//! Callers send it in the `Flagd-Selector` header (every flagd protocol) or, for sync, in the
//! request body. The value is one `key=value` pair split at the first `=`: `flagSetId=<id>`
//! selects the flags whose metadata carries that flag set id (`flagSetId=` selects flags without
//! one), `source=<name>` one source. A value without `=` names a source, as flagd's older
//! selectors did. Empty selects everything, later sources overriding earlier ones.

use std::fmt;

/// A parsed selector.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Selector {
    All,
    Source(String),
    FlagSetId(String),
}

/// The longest selector accepted; names are paths or short ids.
pub const MAX_SELECTOR_LENGTH: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("invalid selector key \"{0}\": valid keys are \"flagSetId\" and \"source\"")]
    UnknownKey(String),
    #[error("a selector has at most {MAX_SELECTOR_LENGTH} bytes")]
    TooLong,
}

impl Selector {
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        if text.len() > MAX_SELECTOR_LENGTH {
            return Err(SelectorError::TooLong);
        }
        let text = text.trim();
        if text.is_empty() {
            return Ok(Self::All);
        }
        match text.split_once('=') {
            None => Ok(Self::Source(text.to_owned())),
            Some(("flagSetId", id)) => Ok(Self::FlagSetId(id.trim().to_owned())),
            Some(("source", name)) => Ok(Self::Source(name.trim().to_owned())),
            Some((key, _)) => Err(SelectorError::UnknownKey(key.to_owned())),
        }
    }

    /// What flagd echoes back in response metadata for this selector.
    pub fn reflection(&self) -> Option<(&'static str, &str)> {
        match self {
            Self::All => None,
            Self::Source(name) => Some(("source", name)),
            Self::FlagSetId(id) => Some(("flagSetId", id)),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reflection() {
            None => Ok(()),
            Some((key, value)) => write!(f, "{key}={value}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flagd_forms() {
        assert_eq!(Selector::parse(""), Ok(Selector::All));
        assert_eq!(
            Selector::parse("flagSetId=checkout"),
            Ok(Selector::FlagSetId("checkout".into()))
        );
        assert_eq!(Selector::parse("flagSetId="), Ok(Selector::FlagSetId(String::new())));
        assert_eq!(
            Selector::parse("source=flags/a.json"),
            Ok(Selector::Source("flags/a.json".into()))
        );
        assert_eq!(
            Selector::parse("flags/a.json"),
            Ok(Selector::Source("flags/a.json".into()))
        );
        assert_eq!(
            Selector::parse("project=x"),
            Err(SelectorError::UnknownKey("project".into()))
        );
        assert_eq!(Selector::parse(&"x".repeat(600)), Err(SelectorError::TooLong));
    }
}
