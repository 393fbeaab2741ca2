//! Version schemes (`auto`, `semver:*`, `git`, explicit) and the next free version from a tag list.
//! (Stub: being written.)
