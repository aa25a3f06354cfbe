//! `ringcast loadgen`: registers devices, then offers call events to one or more nodes at a
//! set rate, live, and writes what it measured (JSON, an SVG plot, a one-page summary).
//!
//! Layout: [`scenario`] says what to do (TOML or flags, validated at once); [`registration`]
//! registers the devices (Web Push ones with subscriptions [`subscriber`] asks the simulator
//! for); [`driver`] is the open-loop scheduler (each call due at its own time, latency from
//! that time: no coordinated omission); [`client`] speaks HTTP/1.1 keep-alive or h2c with
//! hyper; [`report`] keeps the HDR histograms and turns them, with the simulator's record of
//! accepted pushes (joined by call id), into the report; [`plot`] draws it; [`channel`]
//! holds internal push channel clients open during the run (`--channel-clients`); [`knee`]
//! finds, in a ramp's report, the highest rate whose delivery p99 stayed under a bound.
//!
//! Delivery latency is "ring sent → push accepted by the simulator": the start is taken when
//! the generator hands the ring to its connection (a loopback hop before the node accepts
//! it), the end is the simulator's `received_at_us`. Both clocks are this machine's.

pub mod channel;
pub mod client;
pub mod driver;
pub mod knee;
pub mod own_cpu;
pub mod plot;
pub mod registration;
pub mod report;
pub mod scenario;
pub mod subscriber;
pub mod wire;

pub use scenario::{HttpVersion, Rate, Scenario, ScenarioErrors};

use crate::clock::{now_micros, now_millis, rfc3339};
use bytes::Bytes;
use client::{Answer, ApiClient, ClientError};
use driver::{Completed, Limits, Schedule};
use http::Method;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use report::{Deliveries, RegistrationReport, Report, Tally};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Why a load test could not run or report.
#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    /// The scenario is invalid.
    #[error(transparent)]
    Scenario(#[from] ScenarioErrors),
    /// The HTTP client could not be set up.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Web Push subscriptions cannot be asked for (a bad URL, an unreadable certificate).
    #[error(transparent)]
    Subscriber(#[from] subscriber::SubscribeError),
    /// Every registration failed: nothing to ring.
    #[error("every registration failed ({0}); is the node up, and the server key right?")]
    Registration(String),
    /// The simulator's record could not be read.
    #[error("reading the simulator record {path}: {source}")]
    Record {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A report file could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The plot could not be drawn.
    #[error(transparent)]
    Plot(#[from] plot::PlotError),
}

/// Runs `scenario` to the end and returns its report (files are written by [`write`]).
/// Shows a progress bar on stderr when it is a terminal and `progress` is set.
pub async fn run(scenario: Scenario, progress: bool) -> Result<Report, LoadgenError> {
    scenario.validate()?;
    let client = Arc::new(ApiClient::new(
        &scenario.targets,
        scenario.http,
        scenario.connections(),
        &scenario.server_key,
        Duration::from_millis(scenario.request_timeout_ms),
    )?);
    let show = progress && std::io::stderr().is_terminal();
    let registration = if scenario.reuse_registrations {
        RegistrationReport {
            registered: false,
            devices: scenario.total_devices() as u64,
            ..RegistrationReport::default()
        }
    } else {
        registration::register(&scenario, &client, show).await?
    };
    // Call ids must be new on every run: the node rings an event id once.
    let run_id = format!("{}-{:x}", scenario.identity_prefix, now_millis());
    let started_at = rfc3339(now_millis());
    let run_start_us = now_micros();
    let channel = match scenario.channel_clients {
        0 => None,
        count => Some(Arc::new(
            channel::ChannelClients::connect(&scenario, &client, count).await,
        )),
    };
    // Best effort: a node that does not answer yet is the run's to count, call by call.
    if let Err(error) = client.connect().await {
        tracing::warn!(%error, "loadgen: connections not opened before the run; calls will open them");
    }
    let tally = Arc::new(Mutex::new(Tally::default()));
    let bar = progress_bar(show, scenario.calls);
    let ticker = tokio::spawn(tick(bar.clone(), tally.clone(), Instant::now()));
    let started = Instant::now();
    let cpu_before = own_cpu::cpu_seconds();
    drive_calls(&scenario, &client, &run_id, &tally, channel.clone()).await;
    let drive = started.elapsed();
    let cpu_used = own_cpu::cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    ticker.abort();
    bar.finish_and_clear();
    let deliveries = match &scenario.simulator_record {
        Some(path) => {
            // The last pushes may still be on their way to the simulator.
            tokio::time::sleep(Duration::from_millis(scenario.drain_ms)).await;
            // Once, after the run: blocking the runtime here delays nothing measured.
            let records = std::fs::read_to_string(path).map_err(|source| LoadgenError::Record {
                path: path.clone(),
                source,
            })?;
            Some(Deliveries::join(&records, &lock(&tally), run_start_us))
        }
        None => None,
    };
    let tally = lock(&tally);
    let mut report = Report::build(
        (run_id, started_at, scenario, registration),
        drive,
        &tally,
        deliveries.as_ref(),
    );
    report.generator_cpu_cores =
        cpu_used.map(|seconds| (seconds / drive.as_secs_f64().max(1e-9) * 100.0).round() / 100.0);
    report.channel = channel.map(|channel| {
        let avoided = tally.outcomes.get("delivered_internal").copied();
        channel.finish(avoided.unwrap_or_default())
    });
    Ok(report)
}

/// Writes `report.json`, `report.svg` and `summary.txt` into `dir` (created if missing).
pub fn write(report: &Report, dir: &Path) -> Result<Vec<PathBuf>, LoadgenError> {
    let write = |name: &str, contents: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, contents)
            .map(|()| path.clone())
            .map_err(|source| LoadgenError::Write { path, source })
    };
    std::fs::create_dir_all(dir).map_err(|source| LoadgenError::Write {
        path: dir.to_owned(),
        source,
    })?;
    // Serializing plain data with string keys cannot fail.
    let json = serde_json::to_vec_pretty(report).unwrap_or_default();
    Ok(vec![
        write("report.json", &json)?,
        write("report.svg", plot::svg(report)?.as_bytes())?,
        write("summary.txt", report.summary_text().as_bytes())?,
    ])
}

/// The tally, even if a recording task panicked while holding it (counts stay whole).
fn lock(tally: &Mutex<Tally>) -> MutexGuard<'_, Tally> {
    tally
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The error kind of an answer, or `None` for 2xx: `http_<status>`, with the problem's
/// `type` after it when the body is problem+json (`http_503 unavailable`), so the report
/// tells a full queue from a bad key; or the client error's kind (`timeout`, `connect`, ...).
pub(crate) fn failure(answer: &Result<Answer, ClientError>) -> Option<String> {
    match answer {
        Ok(answer) if answer.status.is_success() => None,
        Ok(answer) => {
            let status = answer.status.as_u16();
            let problem = serde_json::from_slice::<serde_json::Value>(&answer.body)
                .ok()
                .and_then(|body| {
                    let kind = body["type"].as_str()?;
                    Some(kind.rsplit(':').next().unwrap_or(kind).to_owned())
                });
            Some(match problem {
                Some(problem) => format!("http_{status} {problem}"),
                None => format!("http_{status}"),
            })
        }
        Err(error) => Some(error.kind().to_owned()),
    }
}

/// What became of one ring, as the driver hands it back.
struct Rang {
    /// The answer (or why there was none).
    answer: Result<Answer, ClientError>,
}

/// Offers the calls per the scenario's rate and records each into `tally`.
async fn drive_calls(
    scenario: &Scenario,
    client: &Arc<ApiClient>,
    run_id: &str,
    tally: &Arc<Mutex<Tally>>,
    channel: Option<Arc<channel::ChannelClients>>,
) {
    let limits = Limits {
        calls: scenario.calls,
        duration: scenario.duration(),
        max_in_flight: match scenario.rate {
            Rate::Max { concurrency } => concurrency,
            _ => scenario.max_in_flight,
        },
    };
    let wait = if scenario.wait_for_outcomes {
        "?wait=true"
    } else {
        ""
    };
    let ring_path: Arc<str> = Arc::from(format!("/v1/calls{wait}"));
    let scenario = Arc::new(scenario.clone());
    let run_id: Arc<str> = Arc::from(run_id);
    // End events in flight, awaited before the run counts as over.
    let ends: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
    let send = |n: u64| {
        let (client, scenario, tally) = (client.clone(), scenario.clone(), tally.clone());
        let (run_id, ring_path, ends) = (run_id.clone(), ring_path.clone(), ends.clone());
        let channel = channel.clone();
        async move {
            let mut rng = fastrand::Rng::with_seed(
                scenario
                    .seed
                    .wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            );
            let callee = scenario.identity(rng.usize(..scenario.identities));
            let call_id = format!("{run_id}-{n}");
            let body = json_body(&wire::RingBody {
                call_id: &call_id,
                callee: &callee,
                caller: wire::CALLER,
                video: n % 2 == 1,
                ring_timeout_seconds: scenario.ring_timeout_seconds,
            });
            // Send times are kept only to join the simulator's record: a long run without one
            // should not grow a map of every call.
            let joined = scenario.simulator_record.is_some();
            if joined {
                lock(&tally)
                    .ring_sent_us
                    .insert(call_id.clone(), now_micros());
            }
            if let Some(channel) = &channel {
                channel.sent(&call_id);
            }
            let answer = client.send(Method::POST, &ring_path, body).await;
            // The call's end, if this one ends early: after its ring was answered, as call
            // control would send it. Its latency is its own (it is not on the schedule).
            let draw = rng.f64();
            let reason = if draw < scenario.end_early {
                Some(("cancelled", None))
            } else if draw < scenario.end_early + scenario.answered_elsewhere {
                Some(("answered_elsewhere", Some("d0")))
            } else {
                None
            };
            if let (Some((reason, device)), Ok(rung)) = (reason, &answer)
                && rung.status.is_success()
            {
                let end = json_body(&wire::EndBody {
                    callee: &callee,
                    reason,
                    device_id: device,
                });
                // Its own task: the ring's latency ends with the ring's answer.
                let (client, tally) = (client.clone(), tally.clone());
                let ending = tokio::spawn(async move {
                    if joined {
                        lock(&tally)
                            .end_sent_us
                            .insert(call_id.clone(), now_micros());
                    }
                    let sent = Instant::now();
                    let ended = client
                        .send(Method::POST, &format!("/v1/calls/{call_id}/end"), end)
                        .await;
                    let mut tally = lock(&tally);
                    tally.end_api.record(sent.elapsed());
                    match failure(&ended) {
                        None => *tally.ends_ok.entry(reason.to_owned()).or_default() += 1,
                        Some(kind) => *tally.end_errors.entry(kind).or_default() += 1,
                    }
                });
                ends.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(ending);
            }
            Rang { answer }
        }
    };
    let sink = tally.clone();
    let record = move |completed: Completed<Rang>| record_call(&mut lock(&sink), completed);
    driver::drive(&Schedule::new(scenario.rate.clone()), limits, send, record).await;
    let ends = std::mem::take(
        &mut *ends
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    for ending in ends {
        if let Err(error) = ending.await {
            tracing::warn!(%error, "loadgen: an end event's task failed");
        }
    }
}

/// Counts one finished (or dropped) call.
fn record_call(tally: &mut Tally, completed: Completed<Rang>) {
    tally.offered += 1;
    tally.second(completed.due).offered += 1;
    tally.send_lag.record(completed.send_lag);
    let Some(Rang { answer }) = completed.result else {
        tally.error("client_overloaded", completed.due);
        return;
    };
    if let Some(kind) = failure(&answer) {
        tally.error(&kind, completed.due);
        return;
    }
    tally.ok += 1;
    tally.api.record(completed.latency);
    let second = tally.second(completed.due);
    second.ok += 1;
    second.api.record(completed.latency);
    let Ok(answer) = answer else { return };
    let Ok(body) = serde_json::from_slice::<wire::RingAnswer>(&answer.body) else {
        count(&mut tally.errors, "unreadable_answer");
        return;
    };
    tally.devices_reached += body.devices;
    for outcome in &body.outcomes {
        let described;
        let kind = match (outcome.outcome.as_deref(), outcome.reason.as_deref()) {
            (Some(outcome), Some(reason)) if outcome != "delivered" => {
                described = format!("{outcome}: {reason}");
                &described
            }
            (Some(outcome), _) => outcome,
            _ => "unreadable",
        };
        let platform = outcome.platform.as_deref().unwrap_or("unknown");
        let by_platform = match tally.outcomes_by_platform.get_mut(platform) {
            Some(by_platform) => by_platform,
            None => tally
                .outcomes_by_platform
                .entry(platform.to_owned())
                .or_default(),
        };
        count(by_platform, kind);
        count(&mut tally.outcomes, kind);
    }
}

/// Adds one to `key`'s count, allocating the key only the first time it is seen.
fn count(counts: &mut BTreeMap<String, u64>, key: &str) {
    match counts.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            counts.insert(key.to_owned(), 1);
        }
    }
}

/// A request body as JSON bytes.
fn json_body(body: &impl serde::Serialize) -> Bytes {
    Bytes::from(
        serde_json::to_vec(body)
            .expect("a struct of strings, numbers and booleans serializes to JSON"),
    )
}

fn progress_bar(show: bool, calls: Option<u64>) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(calls, ProgressDrawTarget::stderr());
    let template = if calls.is_some() {
        "{elapsed_precise} [{wide_bar}] {pos}/{len} {msg}"
    } else {
        "{spinner} {elapsed_precise} {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// Refreshes the progress bar: calls, rate, errors, p99 so far.
async fn tick(bar: ProgressBar, tally: Arc<Mutex<Tally>>, started: Instant) {
    let mut interval = tokio::time::interval(Duration::from_millis(250));
    loop {
        interval.tick().await;
        let (offered, ok, errors, p99) = {
            let tally = lock(&tally);
            let p99 = (tally.api.count() > 0).then(|| tally.api.quantile_ms(0.99));
            (
                tally.offered,
                tally.ok,
                tally.errors.values().sum::<u64>(),
                p99,
            )
        };
        let rate = ok as f64 / started.elapsed().as_secs_f64().max(1e-3);
        bar.set_position(offered);
        bar.set_message(format!(
            "calls {offered} · {rate:.0}/s ok · errors {errors} · p99 {}",
            p99.map_or("-".to_owned(), |p| format!("{p:.2} ms"))
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    #[test]
    fn failures_are_named_by_status_and_problem_type() {
        let answer = |status: u16, body: &str| {
            Ok(Answer {
                status: StatusCode::from_u16(status).unwrap(),
                body: Bytes::from(body.to_owned()),
            })
        };
        assert_eq!(failure(&answer(202, "{}")), None);
        assert_eq!(
            failure(&answer(
                503,
                r#"{"type":"urn:ringcast:problem:unavailable"}"#
            ))
            .as_deref(),
            Some("http_503 unavailable")
        );
        assert_eq!(
            failure(&answer(502, "bad gateway")).as_deref(),
            Some("http_502")
        );
        assert_eq!(
            failure(&Err(ClientError::Timeout)).as_deref(),
            Some("timeout")
        );
    }
}
