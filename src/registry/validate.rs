//! Registration request validation (in progress).
