//! What the provider throughput benches share: driving pushes through a dispatcher, timed,
//! and running `h2load` with the same request against the same simulator as the ceiling, the
//! two alternated for a few rounds.

use actix::Addr;
use ringcast::providers::dispatcher::{Dispatcher, Submit};
use ringcast::providers::service::PushService;
use ringcast::push::{Outcome, Push};
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

/// The node's allocator (`src/main.rs`), so that the provider and the in-process simulator
/// allocate as the `ringcast serve` and `ringcast simulate` binaries do: without it both ran
/// on glibc's malloc, whose free-list upkeep was ~10 % of the simulator's thread.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Connections each client gets.
pub const CONNECTIONS: usize = 2;
/// Streams in flight per connection, at most.
pub const STREAMS: usize = 1000;

/// Pushes/s through `provider`: 2,000 warm-up pushes (connections open, the peer's SETTINGS
/// read, credentials fetched), then `pushes` submitted in batches of 1,000 as a router hands
/// them over, timed until the last outcome. Every push must be delivered.
pub async fn provider_rate<S: PushService>(
    provider: Addr<Dispatcher<S>>,
    pushes: u64,
    push: impl Fn(u64) -> Push,
) -> f64 {
    let warm: Vec<_> = (0..2000).map(&push).collect();
    for ticket in provider.send(Submit(warm)).await.expect("mailbox") {
        ticket.expect("queued").await.expect("outcome");
    }
    let started = Instant::now();
    let mut tickets = Vec::with_capacity(pushes as usize);
    let mut next = 0;
    while next < pushes {
        let batch: Vec<_> = (next..(next + 1000).min(pushes)).map(&push).collect();
        next += batch.len() as u64;
        tickets.extend(provider.send(Submit(batch)).await.expect("mailbox"));
    }
    let mut delivered = 0u64;
    for ticket in tickets {
        if ticket.expect("queued").await.expect("outcome") == Outcome::Delivered {
            delivered += 1;
        }
    }
    let elapsed = started.elapsed();
    assert_eq!(delivered, pushes, "every push delivered");
    pushes as f64 / elapsed.as_secs_f64()
}

/// How many rounds of each client a run alternates (`ROUNDS`, default 3). On a shared
/// machine one provider run and the h2load run after it differ by several points from the
/// next pair, so a run's verdict is the median of its rounds' ratios.
fn rounds() -> usize {
    std::env::var("ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3)
        .max(1)
}

/// What h2load sends: the provider's own request, written out once.
pub struct Ceiling {
    /// The request body's file (`-d`).
    pub body: PathBuf,
    /// Its headers (`-H`), `content-length` left to h2load.
    pub headers: Vec<String>,
    /// The absolute URL.
    pub url: String,
}

/// Runs h2load: `requests` POSTs of `ceiling` over the same connections and streams as the
/// provider, one thread, and returns its requests/s; `None` (said so) without h2load
/// (Debian's nghttp2-client) or when its output is not understood.
fn h2load_rate(requests: u64, ceiling: &Ceiling) -> Option<f64> {
    let mut h2load = Command::new("h2load");
    h2load
        .args(["-n", &requests.to_string()])
        .args(["-c", &CONNECTIONS.to_string()])
        .args(["-m", &STREAMS.to_string()])
        .args(["-t", "1"])
        .arg("-d")
        .arg(&ceiling.body);
    for header in &ceiling.headers {
        h2load.args(["-H", header]);
    }
    h2load.arg(&ceiling.url);
    let output = match h2load.output() {
        Ok(output) => output,
        Err(error) => {
            println!("h2load: not run ({error}); install Debian's nghttp2-client for the ceiling");
            return None;
        }
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let rate = text
        .lines()
        .find(|line| line.starts_with("finished in"))
        .and_then(|line| line.split(", ").nth(1))
        .and_then(|part| part.trim_end_matches(" req/s").parse::<f64>().ok());
    let done = text
        .lines()
        .find(|line| line.starts_with("status codes:"))
        .unwrap_or("status codes: ?");
    match rate {
        Some(rate) => println!("h2load ceiling:    {requests} requests, {rate:.0} req/s ({done})"),
        None => println!("h2load output not understood:\n{text}"),
    }
    rate
}

/// Alternates [`rounds`] runs of the provider (`provider_round`: its pushes/s) and of h2load
/// sending `pushes` of the request `ceiling` makes (after the first provider round: FCM's
/// bearer token is the one the provider obtained), then prints the ratios.
pub fn alternate(
    pushes: u64,
    mut provider_round: impl FnMut() -> f64,
    ceiling: impl FnOnce() -> Ceiling,
) {
    let mut ceiling = Some(ceiling);
    let mut request = None;
    let mut results = Vec::new();
    for _ in 0..rounds() {
        let provider_rate = provider_round();
        println!("ringcast provider: {pushes} pushes, {provider_rate:.0} pushes/s");
        let request = request.get_or_insert_with(|| (ceiling.take().expect("made once"))());
        results.push((provider_rate, h2load_rate(pushes, request)));
    }
    print_ratios(&results);
}

/// Prints the provider's share of h2load in each round (provider pushes/s, h2load req/s)
/// and their median, the run's figure.
fn print_ratios(rounds: &[(f64, Option<f64>)]) {
    let mut ratios: Vec<f64> = rounds
        .iter()
        .filter_map(|&(provider, ceiling)| ceiling.map(|ceiling| 100.0 * provider / ceiling))
        .collect();
    if ratios.is_empty() {
        return;
    }
    let each: Vec<String> = ratios.iter().map(|ratio| format!("{ratio:.0} %")).collect();
    ratios.sort_by(f64::total_cmp);
    let middle = ratios.len() / 2;
    let median = if ratios.len().is_multiple_of(2) {
        (ratios[middle - 1] + ratios[middle]) / 2.0
    } else {
        ratios[middle]
    };
    println!(
        "ratio:             ringcast reaches {median:.0} % of h2load (median of {} rounds: {})",
        ratios.len(),
        each.join(", ")
    );
}
