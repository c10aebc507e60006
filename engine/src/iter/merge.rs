//! Merging iterator (being written).
