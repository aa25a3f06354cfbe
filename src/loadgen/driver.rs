//! The open-loop scheduler: call `n` is due at a fixed offset from the start, whatever the
//! server does, and its latency is measured from that intended time.
//!
//! A closed-loop generator (send, wait, send) slows down with the server and so hides the
//! very stalls a load test exists to find ("coordinated omission"): a 1-second stall delays
//! one measurement instead of the thousand calls that were due during it. Here a late
//! answer never delays the next send; a call that finds `max_in_flight` calls unanswered is
//! recorded as dropped (`client_overloaded`) rather than queued, and a generator that itself
//! falls behind still charges the lag to the call (latency counts from the intended time),
//! and reports its own lag separately so the reader can tell who was slow.

use super::scenario::Rate;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// When each call is due, relative to the start of the run.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    /// The offered rate.
    rate: Rate,
}

impl Schedule {
    /// The schedule of `rate`.
    pub fn new(rate: Rate) -> Schedule {
        Schedule { rate }
    }

    /// When call `n` (from 0) is due, or `None` when there is no schedule (`max`: each call
    /// goes as soon as a slot frees).
    pub fn due(&self, n: u64) -> Option<Duration> {
        let n = n as f64;
        let seconds = match self.rate {
            Rate::Fixed { per_second } => n / per_second,
            Rate::Ramp {
                from,
                to,
                over_seconds,
            } => {
                // The rate is r(t) = from + a·t for t ≤ T, so the calls due by t are
                // N(t) = from·t + a·t²/2; call n is due at the t where N(t) = n.
                let slope = (to - from) / over_seconds;
                let by_end_of_ramp = (from + to) / 2.0 * over_seconds;
                if n >= by_end_of_ramp {
                    over_seconds + (n - by_end_of_ramp) / to
                } else if slope.abs() < f64::EPSILON {
                    n / from
                } else {
                    // n < N(T) keeps the discriminant ≥ to² > 0 for falling ramps too.
                    (-from + (from * from + 2.0 * slope * n).sqrt()) / slope
                }
            }
            Rate::Max { .. } => return None,
        };
        Some(Duration::from_secs_f64(seconds.max(0.0)))
    }
}

/// When a run stops.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// After this many calls.
    pub calls: Option<u64>,
    /// After this long from the start (no call is due at or after it).
    pub duration: Option<Duration>,
    /// Calls unanswered at once (open loop: more are dropped; `max`: the concurrency).
    pub max_in_flight: usize,
}

/// One call, done (or dropped).
#[derive(Clone, Debug)]
pub struct Completed<R> {
    /// Its number, from 0.
    pub n: u64,
    /// When it was due, from the start (for `max`: when it was sent).
    pub due: Duration,
    /// How late the generator itself sent it (0 when on time; always 0 for `max`).
    pub send_lag: Duration,
    /// From the intended send time (open loop) or the actual one (`max`) to the answer.
    pub latency: Duration,
    /// What the call gave; `None` when it was dropped because `max_in_flight` calls were
    /// unanswered.
    pub result: Option<R>,
}

/// Offers calls per `schedule` until `limits`, sending each with `send(n)` and handing every
/// completion to `record`; returns once every sent call has its answer.
pub async fn drive<R, S, F, D>(schedule: &Schedule, limits: Limits, send: S, record: D) -> u64
where
    R: Send + 'static,
    S: Fn(u64) -> F,
    F: Future<Output = R> + Send + 'static,
    D: Fn(Completed<R>) + Clone + Send + 'static,
{
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let slots = Arc::new(Semaphore::new(limits.max_in_flight));
    let mut n = 0u64;
    loop {
        if limits.calls.is_some_and(|calls| n >= calls) {
            break;
        }
        let due = schedule.due(n);
        if let (Some(due), Some(duration)) = (due, limits.duration)
            && due >= duration
        {
            break;
        }
        let (due, permit) = match due {
            Some(due) => {
                tokio::time::sleep_until(start + due).await;
                (due, None)
            }
            None => {
                // Closed loop: wait for a slot; the latency clock starts at the send.
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    break; // The semaphore is never closed; stop rather than spin.
                };
                let now = start.elapsed();
                if limits.duration.is_some_and(|duration| now >= duration) {
                    break;
                }
                (now, Some(permit))
            }
        };
        while tasks.try_join_next().is_some() {}
        let send_lag = start.elapsed().saturating_sub(due);
        if permit.is_none() && in_flight.load(Ordering::Relaxed) >= limits.max_in_flight {
            record(Completed {
                n,
                due,
                send_lag,
                latency: Duration::ZERO,
                result: None,
            });
            n += 1;
            continue;
        }
        in_flight.fetch_add(1, Ordering::Relaxed);
        let call = send(n);
        let (record, in_flight) = (record.clone(), in_flight.clone());
        tasks.spawn(async move {
            let result = call.await;
            let latency = start.elapsed().saturating_sub(due);
            in_flight.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
            record(Completed {
                n,
                due,
                send_lag,
                latency,
                result: Some(result),
            });
        });
        n += 1;
    }
    while tasks.join_next().await.is_some() {}
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn secs(d: Option<Duration>) -> f64 {
        d.unwrap().as_secs_f64()
    }

    #[test]
    fn a_fixed_rate_spaces_calls_evenly() {
        let schedule = Schedule::new(Rate::Fixed { per_second: 200.0 });
        assert_eq!(schedule.due(0), Some(Duration::ZERO));
        assert!((secs(schedule.due(1)) - 0.005).abs() < 1e-9);
        assert!((secs(schedule.due(1000)) - 5.0).abs() < 1e-9);
    }

    #[test]
    fn a_ramp_offers_the_integral_of_its_rate() {
        // 0 → 100/s over 10 s: 500 calls during the ramp, then 100/s.
        let schedule = Schedule::new(Rate::Ramp {
            from: 0.0,
            to: 100.0,
            over_seconds: 10.0,
        });
        assert_eq!(schedule.due(0), Some(Duration::ZERO));
        // N(t) = 5t²: call 125 is due at 5 s, call 500 at 10 s, call 600 at 11 s.
        assert!((secs(schedule.due(125)) - 5.0).abs() < 1e-9);
        assert!((secs(schedule.due(500)) - 10.0).abs() < 1e-9);
        assert!((secs(schedule.due(600)) - 11.0).abs() < 1e-9);
        // Falling ramps and flat ones too, and the due times never go backwards.
        for (from, to) in [(100.0, 10.0), (50.0, 50.0)] {
            let schedule = Schedule::new(Rate::Ramp {
                from,
                to,
                over_seconds: 4.0,
            });
            let times: Vec<f64> = (0..400).map(|n| secs(schedule.due(n))).collect();
            assert!(times.windows(2).all(|w| w[0] <= w[1]), "{from} → {to}");
        }
        assert_eq!(Schedule::new(Rate::Max { concurrency: 4 }).due(3), None);
    }

    /// Runs `drive` on paused tokio time (the fake clock) against a server that takes
    /// `service` per call, one call at a time (a stalled server).
    async fn against_a_serial_server(
        rate: Rate,
        limits: Limits,
        service: Duration,
    ) -> Vec<Completed<()>> {
        let done = Arc::new(Mutex::new(Vec::new()));
        let server = Arc::new(tokio::sync::Mutex::new(()));
        let sink = done.clone();
        drive(
            &Schedule::new(rate),
            limits,
            |_| {
                let server = server.clone();
                async move {
                    let _busy = server.lock().await;
                    tokio::time::sleep(service).await;
                }
            },
            move |completed| sink.lock().unwrap().push(completed),
        )
        .await;
        let mut done = std::mem::take(&mut *done.lock().unwrap());
        done.sort_by_key(|c| c.n);
        done
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_server_does_not_slow_the_offered_load() {
        // 10 calls/s for 1 s against a server that serves one call per 500 ms: a closed loop
        // would send 2 calls and see 500 ms each. Open loop sends all 10 on time, and the
        // latencies grow as the queue does, measured from each call's intended time.
        let limits = Limits {
            calls: None,
            duration: Some(Duration::from_secs(1)),
            max_in_flight: 100,
        };
        let done = against_a_serial_server(
            Rate::Fixed { per_second: 10.0 },
            limits,
            Duration::from_millis(500),
        )
        .await;
        assert_eq!(done.len(), 10);
        for (n, call) in done.iter().enumerate() {
            assert_eq!(call.due, Duration::from_millis(100 * n as u64));
            assert_eq!(call.send_lag, Duration::ZERO, "call {n} sent late");
            // Served in order: call n finishes at (n + 1) · 500 ms.
            let finished = Duration::from_millis(500 * (n as u64 + 1));
            assert_eq!(call.latency, finished - call.due, "call {n}");
        }
        assert_eq!(done[9].latency, Duration::from_millis(4100));
    }

    #[tokio::test(start_paused = true)]
    async fn calls_beyond_max_in_flight_are_dropped_not_delayed() {
        let limits = Limits {
            calls: Some(6),
            duration: None,
            max_in_flight: 2,
        };
        let done = against_a_serial_server(
            Rate::Fixed { per_second: 100.0 },
            limits,
            Duration::from_secs(1),
        )
        .await;
        let dropped: Vec<u64> = done
            .iter()
            .filter(|c| c.result.is_none())
            .map(|c| c.n)
            .collect();
        assert_eq!(dropped, [2, 3, 4, 5]);
        assert_eq!(
            done[5].due,
            Duration::from_millis(50),
            "still offered on time"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn max_keeps_the_concurrency_and_measures_from_the_send() {
        let limits = Limits {
            calls: Some(4),
            duration: None,
            max_in_flight: 2,
        };
        let done = against_a_serial_server(
            Rate::Max { concurrency: 2 },
            limits,
            Duration::from_millis(100),
        )
        .await;
        assert_eq!(done.len(), 4);
        assert!(done.iter().all(|c| c.result.is_some()));
        // Two go at once, the serial server answers them at 100 and 200 ms; each freed slot
        // sends the next at once.
        let sent: Vec<u128> = done.iter().map(|c| c.due.as_millis()).collect();
        assert_eq!(sent, [0, 0, 100, 200]);
        let latency: Vec<u128> = done.iter().map(|c| c.latency.as_millis()).collect();
        assert_eq!(latency, [100, 200, 200, 200]);
    }
}
