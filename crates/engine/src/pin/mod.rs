//! `kiln pin`: write `REPO:VERSION@sha256:…` references into deployment YAML. `text` rewrites one file's text,
//! `files` turns the user's references into rules and rewrites files with them.

mod files;
mod text;

pub use files::{PinRequest, PinnedFile, PinnedRef, pin_files, rules};
pub use text::{PinResult, PinRule, pin_text};
