//! Shared test harness: real Redis servers and clusters on loopback ports, and a running node.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod app;
pub mod black_hole;
pub mod eventually;
pub mod redis_cluster;
pub mod redis_sentinel;
pub mod redis_server;
pub mod redis_tls;
