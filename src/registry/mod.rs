//! A client for the OCI distribution API (registry v2) on `reqwest`'s blocking client.

pub mod credentials;
pub mod errors;
pub mod redact;
