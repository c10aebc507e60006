//! Public SST writer (placeholder: being written).
