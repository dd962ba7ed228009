//! Semantic versions as flagd's `sem_ver` operator reads them.
//!
//! Lenient where flagd is: a `v`/`V` prefix, and missing minor or patch parts ("1", "1.2"), are
//! accepted; build metadata is ignored. Anything else that is not SemVer 2.0 (such as "2.0.0.0")
//! is not a version, and the operator then yields null.

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Version {
    core: [u64; 3],
    pre: Vec<Identifier>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Identifier {
    Numeric(u64),
    Text(String),
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

    pub(crate) fn holds(self, left: &Version, right: &Version) -> bool {
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

impl Version {
    pub(crate) fn parse(text: &str) -> Option<Self> {
        // Bytes, not `str` searches: every cut is at an ASCII byte, and a `char` pattern costs
        // a memchr plus a memcmp per match.
        let bytes = text.as_bytes();
        let bytes = match bytes.first() {
            Some(b'v' | b'V') => &bytes[1..],
            _ => bytes,
        };
        let (bytes, build) = match bytes.iter().position(|&byte| byte == b'+') {
            Some(plus) => (&bytes[..plus], Some(&bytes[plus + 1..])),
            None => (bytes, None),
        };
        if let Some(build) = build
            && build
                .split(|&byte| byte == b'.')
                .any(|part| part.is_empty() || !part.iter().all(|byte| byte.is_ascii_alphanumeric() || *byte == b'-'))
        {
            return None;
        }
        let (core_bytes, pre_bytes) = match bytes.iter().position(|&byte| byte == b'-') {
            Some(dash) => (&bytes[..dash], Some(&bytes[dash + 1..])),
            None => (bytes, None),
        };

        let mut core = [0u64; 3];
        let mut parts = 0;
        for part in core_bytes.split(|&byte| byte == b'.') {
            // A fourth part is not a version.
            *core.get_mut(parts)? = numeric_bytes(part)?;
            parts += 1;
        }
        // Shorthand ("1", "1.2") is accepted only without a pre-release or build suffix.
        if parts < 3 && (pre_bytes.is_some() || build.is_some()) {
            return None;
        }

        let pre = match pre_bytes {
            // Cut at ASCII bytes only, so still UTF-8.
            Some(pre) => std::str::from_utf8(pre)
                .ok()?
                .split('.')
                .map(identifier)
                .collect::<Option<Vec<_>>>()?,
            None => Vec::new(),
        };
        Some(Self { core, pre })
    }
}

/// A version number part: digits, no leading zero, fits in u64.
fn numeric_bytes(part: &[u8]) -> Option<u64> {
    if part.is_empty() || (part.len() > 1 && part[0] == b'0') {
        return None;
    }
    part.iter().try_fold(0u64, |number, &byte| {
        let digit = byte.checked_sub(b'0').filter(|digit| *digit <= 9)?;
        number.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

fn numeric(part: &str) -> Option<u64> {
    numeric_bytes(part.as_bytes())
}

fn identifier(part: &str) -> Option<Identifier> {
    if part.is_empty() || !part.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-') {
        return None;
    }
    Some(match numeric(part) {
        Some(number) => Identifier::Numeric(number),
        None => Identifier::Text(part.to_owned()),
    })
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.core
            .cmp(&other.core)
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                // A pre-release sorts before its release.
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => self.pre.cmp(&other.pre),
            })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Identifier {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::Numeric(a), Self::Numeric(b)) => a.cmp(b),
            (Self::Numeric(_), Self::Text(_)) => Ordering::Less,
            (Self::Text(_), Self::Numeric(_)) => Ordering::Greater,
            (Self::Text(a), Self::Text(b)) => a.cmp(b),
        }
    }
}

impl PartialOrd for Identifier {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(text: &str) -> Version {
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
