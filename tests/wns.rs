//! WNS end to end: a real node rings Windows devices on the simulator's WNS side over real
//! TLS (`node`), and the provider alone keeps one dispatcher per channel host, so a host
//! that never answers holds up no other (`hosts`).

mod support;
mod wns {
    pub mod hosts;
    pub mod node;
}
