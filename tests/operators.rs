//! What operators run and touch: `ringcast demo`, the admin listener, live reload, TLS on the
//! public listener (README, "Quick start", "Configuration", "Deploying").

mod support;

#[path = "operators/admin.rs"]
mod admin;
#[path = "operators/binary.rs"]
mod binary;
#[path = "operators/credentials.rs"]
mod credentials;
#[path = "operators/demo.rs"]
mod demo;
#[path = "operators/node.rs"]
mod node;
#[path = "operators/tls.rs"]
mod tls;
