//! Resource names (`projects/shop/flags/checkout`) and the ids inside them, checked the same
//! way by every service that names resources this way.

use crate::error::FieldViolation;

const MAX_ID: usize = 128;

/// Ids of projects, environments, flags, segments, experiments and metrics: letters, digits,
/// `.`, `_`, `-`, starting with a letter or digit, at most 128 bytes. They appear in resource
/// names and selectors.
pub fn check_id(field: &str, id: &str) -> Result<(), FieldViolation> {
    let mut bytes = id.bytes();
    let first_ok = bytes.next().is_some_and(|byte| byte.is_ascii_alphanumeric());
    let rest_ok = bytes.all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'));
    if first_ok && rest_ok && id.len() <= MAX_ID {
        return Ok(());
    }
    let shown: String = id.chars().take(80).collect();
    let rule = format!("letters, digits, '.', '_', '-', starting with a letter or digit, at most {MAX_ID} bytes");
    Err(FieldViolation::new(field, format!("\"{shown}\" is not an id: {rule}")))
}

/// Splits a resource name against a pattern such as `projects/*/flags/*`, returning the ids in
/// place of the stars, each checked.
pub fn parse_name(field: &str, name: &str, pattern: &str) -> Result<Vec<String>, FieldViolation> {
    let parts: Vec<&str> = name.split('/').collect();
    let expected: Vec<&str> = pattern.split('/').collect();
    let shown: String = name.chars().take(80).collect();
    let wrong = || FieldViolation::new(field, format!("\"{shown}\" is not of the form {pattern}"));
    if parts.len() != expected.len() {
        return Err(wrong());
    }
    let mut ids = Vec::new();
    for (part, want) in parts.iter().zip(&expected) {
        if *want == "*" {
            check_id(field, part)?;
            ids.push((*part).to_owned());
        } else if part != want {
            return Err(wrong());
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_into_checked_ids() {
        assert_eq!(
            parse_name("name", "projects/shop/flags/new-checkout", "projects/*/flags/*").ok(),
            Some(vec!["shop".to_owned(), "new-checkout".to_owned()])
        );
        for bad in [
            "projects/shop",
            "projects//flags/x",
            "projects/shop/segments/x",
            "projects/-x/flags/y",
        ] {
            assert!(parse_name("name", bad, "projects/*/flags/*").is_err(), "{bad}");
        }
        assert!(check_id("id", &"a".repeat(129)).is_err());
        assert!(check_id("id", "a'; DROP TABLE x").is_err());
    }
}
