//! Page tokens. A list returns `next_page_token` and takes it back as `page_token`; the
//! token is opaque to callers (base64url of a versioned position), so they cannot build
//! one by hand, and a token that was not issued by a list is refused with a field violation
//! instead of silently restarting or skipping the listing.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::error::FieldViolation;

const VERSION: &str = "p1:";
/// Positions are short keys; anything longer was not issued by us.
const MAX_TOKEN_LENGTH: usize = 1024;

/// The token that resumes a listing after `position` (the last key of the page).
pub fn encode(position: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{VERSION}{position}"))
}

/// The position a token resumes after; `None` for the empty token (the first page).
pub fn decode(token: &str) -> Result<Option<String>, FieldViolation> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || {
        FieldViolation::new(
            "page_token",
            "not a token this list issued: pass `next_page_token` from the previous page, or nothing",
        )
    };
    if token.len() > MAX_TOKEN_LENGTH {
        return Err(invalid());
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    text.strip_prefix(VERSION)
        .map(|position| Some(position.to_owned()))
        .ok_or_else(invalid)
}

/// Checks a requested page size: 0 means `default`, above `max` is capped, negative is refused.
pub fn page_size(requested: i32, default: i64, max: i64) -> Result<i64, FieldViolation> {
    match requested {
        size if size < 0 => Err(FieldViolation::new(
            "page_size",
            format!("must be 0 (for the default, {default}) or positive"),
        )),
        0 => Ok(default),
        size => Ok(i64::from(size).min(max)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_gives_back_its_position() {
        assert_eq!(
            decode(&encode("1700000000000:ab12")).unwrap().as_deref(),
            Some("1700000000000:ab12")
        );
        assert_eq!(decode("").unwrap(), None);
    }

    #[test]
    fn tokens_we_did_not_issue_are_refused() {
        for forged in [
            "-1",
            "42",
            "projects/x",
            "cDE",
            &URL_SAFE_NO_PAD.encode("p2:x"),
            &"a".repeat(2000),
        ] {
            assert!(decode(forged).is_err(), "{forged} was accepted");
        }
    }

    #[test]
    fn negative_page_sizes_are_refused() {
        assert!(page_size(-1, 100, 1000).is_err());
        assert_eq!(page_size(0, 100, 1000).unwrap(), 100);
        assert_eq!(page_size(5000, 100, 1000).unwrap(), 1000);
    }
}
