//! Registry image references (`host[:port]/repo[:tag][@sha256:…]`) with docker's defaults.
//! (Stub: being written.)
