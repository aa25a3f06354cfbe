#![forbid(unsafe_code)]
pub mod registry;
