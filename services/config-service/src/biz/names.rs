//! Resource names and ids. Ids are what users type into URLs and file names, so they are
//! kept to a safe alphabet; names are parsed here once, never by string slicing elsewhere.

use super::error::{ConfigError, ConfigResult};

const MAX_ID: usize = 63;

/// Checks an id: 1–63 of `[a-z0-9-_.]`, starting with a letter or digit.
pub fn check_id(field: &str, id: &str) -> ConfigResult<()> {
    let valid = !id.is_empty()
        && id.len() <= MAX_ID
        && id.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    if valid {
        return Ok(());
    }
    Err(ConfigError::invalid(
        field,
        format!(
            "`{}` is not a valid id: use 1-63 of a-z, 0-9, '-', '_', '.', starting with a letter or digit",
            truncate(id)
        ),
    ))
}

fn truncate(text: &str) -> String {
    text.chars().take(80).collect()
}

/// Splits `name` against a pattern such as `projects/*/configs/*`, returning the ids in
/// place of the stars, each checked.
pub fn parse(field: &str, name: &str, pattern: &str) -> ConfigResult<Vec<String>> {
    let parts: Vec<&str> = name.split('/').collect();
    let expected: Vec<&str> = pattern.split('/').collect();
    let wrong = || ConfigError::invalid(field, format!("`{}` is not of the form `{pattern}`", truncate(name)));
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

/// A reference to a base config: `{config}` in the same project or
/// `projects/{project}/configs/{config}` in another project of the tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConfigRef {
    pub project: String,
    pub config: String,
}

impl ConfigRef {
    pub fn parse(field: &str, text: &str, home_project: &str) -> ConfigResult<ConfigRef> {
        if !text.contains('/') {
            check_id(field, text)?;
            return Ok(ConfigRef {
                project: home_project.to_owned(),
                config: text.to_owned(),
            });
        }
        let ids = parse(field, text, "projects/*/configs/*")?;
        Ok(ConfigRef {
            project: ids[0].clone(),
            config: ids[1].clone(),
        })
    }

    /// `projects/{project}/configs/{config}`.
    pub fn name(&self) -> String {
        format!("projects/{}/configs/{}", self.project, self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_into_checked_ids() {
        let ids = parse("name", "projects/shop/configs/app", "projects/*/configs/*").unwrap();
        assert_eq!(ids, vec!["shop", "app"]);
        assert!(parse("name", "projects/shop/flags/app", "projects/*/configs/*").is_err());
        assert!(parse("name", "projects/Shop/configs/app", "projects/*/configs/*").is_err());
        assert!(
            parse(
                "name",
                "projects/shop/configs/a'; DROP TABLE configs;--",
                "projects/*/configs/*"
            )
            .is_err()
        );
        assert!(parse("name", "projects//configs/app", "projects/*/configs/*").is_err());
    }

    #[test]
    fn references_default_to_the_home_project() {
        let local = ConfigRef::parse("extends", "base", "shop").unwrap();
        assert_eq!(local.name(), "projects/shop/configs/base");
        let shared = ConfigRef::parse("extends", "projects/shared/configs/db", "shop").unwrap();
        assert_eq!(shared.project, "shared");
    }
}
