//! flagd flag files as sources: loaded at start, reloaded when they change.
//!
//! Each file is polled (size, modification time, inode), which also catches editors and
//! deployment tools that write a new file and rename it over the old one. A changed file is
//! read whole, parsed (JSON, or YAML for `.yaml`/`.yml`) and compiled; only a document that
//! compiles replaces the source, so a broken edit is reported with its path and the last good
//! flags keep serving.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime},
};

use flag_engine::{FlagSet, Limits};
use switchyard_platform::Shutdown;

use crate::biz::catalog::{Catalog, SourceFlags};

/// A flag file that could not be used, and why.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FlagFileError {
    pub path: String,
    pub message: String,
}

/// The largest flag file read, so a wrong path (a log file, say) cannot exhaust memory.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    length: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    let metadata = std::fs::metadata(path)?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&metadata);
    #[cfg(not(unix))]
    let inode = 0;
    Ok(Stamp {
        length: metadata.len(),
        modified: metadata.modified().ok(),
        inode,
    })
}

/// Reads and compiles one flag file.
pub fn read(path: &Path, limits: &Limits) -> Result<FlagSet, FlagFileError> {
    let name = path.display().to_string();
    let error = |message: String| FlagFileError {
        path: name.clone(),
        message,
    };
    let length = std::fs::metadata(path)
        .map_err(|e| error(format!("cannot read: {e}")))?
        .len();
    if length > MAX_FILE_BYTES {
        return Err(error(format!("larger than {MAX_FILE_BYTES} bytes")));
    }
    let text = std::fs::read_to_string(path).map_err(|e| error(format!("cannot read: {e}")))?;
    let yaml = path
        .extension()
        .is_some_and(|extension| extension == "yaml" || extension == "yml");
    let document: serde_json::Value = if yaml {
        serde_norway::from_str(&text).map_err(|e| error(format!("not valid YAML: {e}")))?
    } else {
        serde_json::from_str(&text).map_err(|e| error(format!("not valid JSON: {e}")))?
    };
    let flags = FlagSet::from_document(&document, limits).map_err(|e| error(e.to_string()))?;
    for problem in flags.problems() {
        tracing::warn!(path = %name, flag = %problem.flag, "{}; the flag resolves with PARSE_ERROR", problem.message);
    }
    Ok(flags)
}

/// The flag files of this process, in priority order (later files override earlier ones).
#[derive(Debug)]
pub struct FlagFiles {
    files: Vec<Watched>,
    catalog: Arc<Catalog>,
    limits: Limits,
}

#[derive(Debug)]
struct Watched {
    path: PathBuf,
    name: String,
    stamp: Option<Stamp>,
    /// The last failure reported, so a broken file is logged once, not on every poll.
    failure: Option<String>,
}

impl FlagFiles {
    /// Loads every file into the catalog; any file that does not load fails the start.
    pub fn load(paths: &[PathBuf], catalog: Arc<Catalog>, limits: Limits) -> Result<Self, FlagFileError> {
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            let before = stamp(path).ok();
            let flags = read(path, &limits)?;
            let name = path.display().to_string();
            tracing::info!(path = %name, flags = flags.len(), "flag file loaded");
            catalog.put_source(
                None,
                &name,
                SourceFlags {
                    all: flags,
                    client: None,
                },
            );
            files.push(Watched {
                path: path.clone(),
                name,
                stamp: before,
                failure: None,
            });
        }
        Ok(Self { files, catalog, limits })
    }

    /// Polls the files every `interval` until shutdown, reloading those that changed.
    pub async fn watch(mut self, interval: Duration, shutdown: Shutdown) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => self.poll(),
                _ = shutdown.cancelled() => return,
            }
        }
    }

    fn poll(&mut self) {
        for file in &mut self.files {
            let current = stamp(&file.path).ok();
            if current.is_none() || current == file.stamp {
                continue;
            }
            match read(&file.path, &self.limits) {
                Ok(flags) => {
                    tracing::info!(path = %file.name, flags = flags.len(), "flag file reloaded");
                    self.catalog.put_source(
                        None,
                        &file.name,
                        SourceFlags {
                            all: flags,
                            client: None,
                        },
                    );
                    file.stamp = current;
                    file.failure = None;
                }
                Err(error) => {
                    // Stay on the old stamp's side only for reporting: the same broken
                    // version is not parsed again until the file changes once more.
                    file.stamp = current;
                    if file.failure.as_deref() != Some(&error.message) {
                        tracing::error!(path = %file.name, error = %error.message, "flag file rejected; the last good flags keep serving");
                        file.failure = Some(error.message);
                    }
                }
            }
        }
    }
}
