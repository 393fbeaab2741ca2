//! `kiln pin`: rewrite `image:` values in YAML to pinned `REPO:VERSION@sha256:…` references, byte-preserving.
//! (Stub: being written.)
