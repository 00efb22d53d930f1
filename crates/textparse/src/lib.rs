//! Exposition-format parsers (being written).
