//! `kiln.toml`: the build's flags, declared in a file at the build's root. Keys are the long flag names; a flag
//! given on the command line wins over the file (a list flag replaces the file's list). Every value is validated
//! here, while its position is known, so a mistake is reported as `FILE:LINE: key "NAME": …` (exit 2).

mod doc;
mod file;
mod merge;
mod parse;

pub use merge::load_into;
