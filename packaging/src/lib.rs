//! Carries the Debian package metadata for contain (see `Cargo.toml`); ships no code.
