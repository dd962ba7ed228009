//! Semantic versions as flagd's `sem_ver` operator reads them.
//!
//! Lenient where flagd is: a `v`/`V` prefix, and missing minor or patch parts ("1", "1.2"), are
//! accepted; build metadata is ignored. Anything else that is not SemVer 2.0 (such as "2.0.0.0")
//! is not a version, and the operator then yields null.

use std::borrow::Cow;
use std::cmp::Ordering;

/// A version, borrowing its pre-release part from the text it was read from: reading the
/// version in a context allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Version<'a> {
    core: [u64; 3],
    /// The pre-release identifiers as written (`rc.1`), already checked; empty for a release.
    pre: Cow<'a, str>,
}

/// The comparisons `sem_ver` supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Comparison {
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    /// `^`: same major version.
    SameMajor,
    /// `~`: same major and minor version.
    SameMinor,
}

impl Comparison {
    pub(crate) fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "=" => Self::Equal,
            "!=" => Self::NotEqual,
            "<" => Self::Less,
            "<=" => Self::LessOrEqual,
            ">" => Self::Greater,
            ">=" => Self::GreaterOrEqual,
            "^" => Self::SameMajor,
            "~" => Self::SameMinor,
            _ => return None,
        })
    }

    pub(crate) fn holds(self, left: &Version<'_>, right: &Version<'_>) -> bool {
        let order = left.cmp(right);
        match self {
            Self::Equal => order == Ordering::Equal,
            Self::NotEqual => order != Ordering::Equal,
            Self::Less => order == Ordering::Less,
            Self::LessOrEqual => order != Ordering::Greater,
            Self::Greater => order == Ordering::Greater,
            Self::GreaterOrEqual => order != Ordering::Less,
            // As in flagd: only the major (or major.minor) version is compared.
            Self::SameMajor => left.core[0] == right.core[0],
            Self::SameMinor => left.core[..2] == right.core[..2],
        }
    }
}

impl<'a> Version<'a> {
    pub(crate) fn parse(text: &'a str) -> Option<Self> {
        // Bytes, not `str` searches: every cut is at an ASCII byte, and a `char` pattern costs
        // a memchr plus a memcmp per match.
        let bytes = text.as_bytes();
        let bytes = match bytes.first() {
            Some(b'v' | b'V') => &bytes[1..],
            _ => bytes,
        };
        // The numeric core: one to three parts separated by `.`, up to the first `-`
        // (pre-release) or `+` (build).
        let mut core = [0u64; 3];
        let mut at = 0;
        let mut parts = 0;
        while parts < 3 {
            core[parts] = numeric_prefix(bytes, &mut at)?;
            parts += 1;
            match bytes.get(at) {
                Some(b'.') if parts < 3 => at += 1,
                _ => break,
            }
        }
        let end = at;
        // What stops the core must be the end, `-` or `+` (a fourth part is not a version).
        if !matches!(bytes.get(end), None | Some(b'-' | b'+')) {
            return None;
        }

        // What follows: `-pre` up to a `+`, then `+build` (which may itself contain `-`).
        let suffix = &bytes[end..];
        let (pre_bytes, build) = match suffix.first() {
            Some(b'-') => match suffix.iter().position(|&byte| byte == b'+') {
                Some(plus) => (Some(&suffix[1..plus]), Some(&suffix[plus + 1..])),
                None => (Some(&suffix[1..]), None),
            },
            Some(_) => (None, Some(&suffix[1..])),
            None => (None, None),
        };
        if let Some(build) = build
            && build
                .split(|&byte| byte == b'.')
                .any(|part| part.is_empty() || !part.iter().all(|byte| byte.is_ascii_alphanumeric() || *byte == b'-'))
        {
            return None;
        }
        // Shorthand ("1", "1.2") is accepted only without a pre-release or build suffix.
        if parts < 3 && (pre_bytes.is_some() || build.is_some()) {
            return None;
        }

        let pre = match pre_bytes {
            Some(pre) if pre.split(|&byte| byte == b'.').all(is_identifier) => {
                // Only ASCII letters, digits, `-` and `.`: still UTF-8.
                std::str::from_utf8(pre).ok()?
            }
            Some(_) => return None,
            None => "",
        };
        Some(Self {
            core,
            pre: Cow::Borrowed(pre),
        })
    }

    /// The same version, owning its text (a target parsed once at compile time).
    pub(crate) fn into_owned(self) -> Version<'static> {
        Version {
            core: self.core,
            pre: Cow::Owned(self.pre.into_owned()),
        }
    }
}

/// The version number at `*at`, moving `at` past it: digits, no leading zero, fits in u64.
fn numeric_prefix(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let start = *at;
    let mut number: u64 = 0;
    while let Some(digit) = bytes
        .get(*at)
        .map(|byte| byte.wrapping_sub(b'0'))
        .filter(|digit| *digit <= 9)
    {
        number = number.checked_mul(10)?.checked_add(u64::from(digit))?;
        *at += 1;
    }
    let digits = *at - start;
    if digits == 0 || (digits > 1 && bytes[start] == b'0') {
        return None;
    }
    Some(number)
}

/// A version number part: digits, no leading zero, fits in u64.
fn numeric_bytes(part: &[u8]) -> Option<u64> {
    let mut at = 0;
    numeric_prefix(part, &mut at).filter(|_| at == part.len())
}

/// A pre-release identifier: ASCII letters, digits and `-`, not empty.
fn is_identifier(part: &[u8]) -> bool {
    !part.is_empty() && part.iter().all(|byte| byte.is_ascii_alphanumeric() || *byte == b'-')
}

/// SemVer precedence of two pre-release identifiers: numbers numerically and below text,
/// text in ASCII order. ("01" is not a number, so it is text, as it was always read here.)
fn identifier_order(left: &str, right: &str) -> Ordering {
    match (numeric_bytes(left.as_bytes()), numeric_bytes(right.as_bytes())) {
        (Some(a), Some(b)) => a.cmp(&b),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => left.cmp(right),
    }
}

/// Identifier by identifier; a shorter list that is a prefix of the other sorts first.
fn pre_release_order(left: &str, right: &str) -> Ordering {
    let (mut left, mut right) = (left.split('.'), right.split('.'));
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(a), Some(b)) => match identifier_order(a, b) {
                Ordering::Equal => {}
                order => return order,
            },
        }
    }
}

impl Ord for Version<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.core
            .cmp(&other.core)
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                // A pre-release sorts before its release.
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => pre_release_order(&self.pre, &other.pre),
            })
    }
}

impl PartialOrd for Version<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(text: &str) -> Version<'_> {
        Version::parse(text).unwrap_or_else(|| panic!("{text} should parse"))
    }

    #[test]
    fn lenient_forms_parse() {
        assert_eq!(version("v1.0.0"), version("1.0.0"));
        assert_eq!(version("V1"), version("1.0.0"));
        assert_eq!(version("1.2"), version("1.2.0"));
        assert_eq!(version("1.0.0+build.7"), version("1.0.0"));
        for invalid in [
            "",
            "2.0.0.0",
            "not-a-version",
            "1..0",
            "01.0.0",
            "1.0.0-",
            "1.0.0-a..b",
            "x1.0",
        ] {
            assert!(Version::parse(invalid).is_none(), "{invalid} should be refused");
        }
    }

    #[test]
    fn precedence_follows_semver() {
        let ordered = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "2.0.0",
        ];
        for pair in ordered.windows(2) {
            assert!(version(pair[0]) < version(pair[1]), "{} < {}", pair[0], pair[1]);
        }
    }

    #[test]
    fn range_operators() {
        let holds =
            |left: &str, op: &str, right: &str| Comparison::parse(op).map(|c| c.holds(&version(left), &version(right)));
        assert_eq!(holds("3.0.1", "~", "3.0.0"), Some(true));
        assert_eq!(holds("3.1.0", "~", "3.0.0"), Some(false));
        assert_eq!(holds("3.1.0", "^", "3.0.0"), Some(true));
        assert_eq!(holds("4.0.0", "^", "3.0.0"), Some(false));
        assert_eq!(holds("2.9.0", "^", "3.0.0"), Some(false));
        assert_eq!(
            holds("3.0.0", "^", "3.1.0"),
            Some(true),
            "flagd compares the major version only"
        );
        assert_eq!(holds("2.1.0", "~", "2.1.3"), Some(true));
        assert_eq!(holds("1.0.0", "===", "1.0.0"), None);
    }
}
