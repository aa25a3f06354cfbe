//! CPU seconds, for benches that report work per operation: the bench process's own (what a
//! node would spend), and a Redis server's (`INFO cpu`). A rate depends on how busy the shared
//! machine is; CPU per operation much less, so A/B comparisons use it.

/// CPU seconds (user + system, every thread) this process has used, from `/proc/self/stat`
/// (fields 14 and 15, in clock ticks of 1/100 s on Linux).
pub fn process_seconds() -> f64 {
    const TICKS_PER_SECOND: f64 = 100.0;
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis don't.
    let after_name = &stat[stat.rfind(')').expect("a command name") + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // `after_name` starts at field 3 (the state), so utime (14) and stime (15) are at 11 and 12.
    let ticks: f64 = fields[11..13]
        .iter()
        .map(|field| field.parse::<f64>().expect("a tick count"))
        .sum();
    ticks / TICKS_PER_SECOND
}

/// CPU seconds a Redis server has used (`INFO cpu`: user + system, main thread and the rest).
pub async fn redis_seconds(url: &str) -> f64 {
    let client = redis::Client::open(url).expect("a redis URL");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let info: String = redis::cmd("INFO")
        .arg("cpu")
        .query_async(&mut connection)
        .await
        .expect("INFO cpu");
    ["used_cpu_user:", "used_cpu_sys:"]
        .iter()
        .map(|field| {
            info.lines()
                .find_map(|line| line.strip_prefix(field))
                .and_then(|value| value.trim().parse::<f64>().ok())
                .expect("used_cpu_* in INFO cpu")
        })
        .sum()
}
