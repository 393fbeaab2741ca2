//! A client for the OCI distribution API (registry v2) on `reqwest`.
//! (Stub: being written.)
