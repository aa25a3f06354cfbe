//! The registry shard actor (in progress).
