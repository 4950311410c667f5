//! The scenarios `make demo` shows (placeholder, filled below).
