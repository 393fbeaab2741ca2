//! `kiln pin` and `kiln check`: image references in deployment YAML. `yaml` parses a file into a tree whose
//! scalars know their bytes, `sites` finds where images are named (`image:`, Helm blocks, kustomize `images:`),
//! `text` rewrites one file's matched values, `files` turns the user's references into rules and rewrites files,
//! `check` reports images that are not pinned (and, with a registry, pins that no longer hold).

mod check;
mod files;
mod sites;
mod text;
mod yaml;

pub use check::{CheckReport, CheckRequest, Problem, check};
pub use files::{PinRequest, PinnedFile, PinnedRef, pin_files, rules};
pub use text::{PinOptions, PinResult, PinRule, pin_text};
pub use yaml::YamlError;
