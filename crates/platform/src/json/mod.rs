//! Pure helpers for JSON documents that more than one service manages: paths that name a
//! place in a document, and structural diffs listed by path.

pub mod diff;
pub mod path;
