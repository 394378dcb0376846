//! The render-to-files step shared by `contain-generator` and `containctl apply`/`render`, so
//! that both write the same files; the generator binary is the rest.

pub mod kmsg;
mod write;

pub use write::generate;
