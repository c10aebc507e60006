//! User-facing iterator (being written).
