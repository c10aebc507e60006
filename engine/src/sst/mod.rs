//! SST files (placeholder: being written).
