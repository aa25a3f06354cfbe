//! `ringcast health`: asks a node's admin listener whether it is ready, for container
//! health checks (the image ships no curl; README, "Deploying").
//!
//! One HTTP/1.1 request over a plain TCP connection with a deadline: the admin listener
//! speaks plain HTTP on loopback, so no HTTP client or TLS stack is needed here.

use anyhow::Context;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// `health` flags.
#[derive(Debug, clap::Args)]
pub struct HealthArgs {
    /// The admin listener (`admin.listen`).
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub address: SocketAddr,
    /// The path to ask: `/readyz` (ready for traffic) or `/healthz` (alive).
    #[arg(long, default_value = "/readyz", value_parser = parse_path)]
    pub path: String,
    /// How long the whole check may take, in milliseconds.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: u64,
}

/// Asks once; `Ok` only for a `200`.
pub fn run(args: &HealthArgs) -> anyhow::Result<()> {
    let timeout = Duration::from_millis(args.timeout_ms);
    let status = status_of(args.address, &args.path, timeout)
        .with_context(|| format!("asking http://{}{}", args.address, args.path))?;
    if status == 200 {
        println!("http://{}{}: {status}", args.address, args.path);
        Ok(())
    } else {
        anyhow::bail!("http://{}{} answered {status}", args.address, args.path)
    }
}

/// The status code of `GET path` at `address`.
fn status_of(address: SocketAddr, path: &str, timeout: Duration) -> anyhow::Result<u16> {
    let mut stream = TcpStream::connect_timeout(&address, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    // The status line fits in the first read's worth; the body does not matter.
    let mut head = [0u8; 256];
    let mut read = 0;
    while read < head.len() {
        let n = stream.read(&mut head[read..])?;
        if n == 0 {
            break;
        }
        read += n;
        if head[..read].contains(&b'\n') {
            break;
        }
    }
    parse_status_line(&head[..read])
}

/// `HTTP/1.1 200 OK` → 200.
fn parse_status_line(head: &[u8]) -> anyhow::Result<u16> {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next().map(str::parse::<u16>)) {
        (Some(version), Some(Ok(status))) if version.starts_with("HTTP/") => Ok(status),
        _ => anyhow::bail!("not an HTTP answer: {:?}", line.trim_end()),
    }
}

fn parse_path(path: &str) -> Result<String, String> {
    if path.starts_with('/') && !path.contains(|c: char| c.is_whitespace() || c.is_control()) {
        Ok(path.to_owned())
    } else {
        Err("a path starts with / and has no spaces".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_parse_and_garbage_is_refused() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r\n").unwrap(), 200);
        assert_eq!(
            parse_status_line(b"HTTP/1.1 503 Service Unavailable\r\nx").unwrap(),
            503
        );
        assert!(parse_status_line(b"SSH-2.0-OpenSSH\r\n").is_err());
        assert!(parse_status_line(b"").is_err());
        assert!(parse_path("readyz").is_err());
        assert!(parse_path("/readyz HTTP/1.0\r\n").is_err());
    }

    #[test]
    fn nothing_listening_is_unhealthy() {
        // A port just released: nothing listens there.
        let address = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let args = HealthArgs {
            address,
            path: "/readyz".into(),
            timeout_ms: 500,
        };
        assert!(run(&args).is_err());
    }
}
