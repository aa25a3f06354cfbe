//! The standard Prometheus process metrics (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_open_fds`, `process_max_fds`,
//! `process_start_time_seconds`), read from `/proc` at scrape time.
//!
//! Read by hand rather than through a crate: five numbers from four small files do not justify
//! a dependency (and the usual one pulls in `libc` bindings and more). The parsers are pure
//! functions over the files' text, tested on samples; [`ProcessSample::read`] only reads the
//! files. Where `/proc` is missing (not Linux), the metrics are left out of the scrape.

use std::fmt::Write;

/// The Linux `USER_HZ` every mainstream architecture uses; the real value is read from the
/// auxiliary vector, this is only the fallback.
const DEFAULT_CLOCK_TICKS: u64 = 100;

/// `AT_CLKTCK` in the auxiliary vector: the clock ticks per second of `/proc/*/stat` times.
const AT_CLKTCK: u64 = 17;

/// One reading of the process metrics; a value that could not be read is `None` and left out.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ProcessSample {
    /// User + system CPU time, in seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident set size, in bytes.
    pub resident_bytes: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The soft limit on open file descriptors (`None` when unlimited).
    pub max_fds: Option<u64>,
    /// When the process started, in seconds since the UNIX epoch.
    pub start_time_seconds: Option<f64>,
}

impl ProcessSample {
    /// Reads the current process's values from `/proc/self`.
    pub fn read() -> ProcessSample {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        let ticks = std::fs::read("/proc/self/auxv")
            .ok()
            .and_then(|auxv| clock_ticks(&auxv))
            .unwrap_or(DEFAULT_CLOCK_TICKS);
        let stat = read("/proc/self/stat").and_then(|text| parse_stat(&text));
        let boot_time = read("/proc/stat").and_then(|text| parse_boot_time(&text));
        ProcessSample {
            cpu_seconds: stat.map(|stat| (stat.utime + stat.stime) as f64 / ticks as f64),
            resident_bytes: read("/proc/self/status").and_then(|text| parse_rss_bytes(&text)),
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|entries| entries.count() as u64),
            max_fds: read("/proc/self/limits").and_then(|text| parse_max_fds(&text)),
            start_time_seconds: stat
                .zip(boot_time)
                .map(|(stat, boot)| boot as f64 + stat.starttime as f64 / ticks as f64),
        }
    }

    /// Appends the values in the Prometheus text format.
    pub fn render_into(&self, text: &mut String) {
        let mut family = |name: &str, kind: &str, help: &str, value: Option<String>| {
            if let Some(value) = value {
                // Writing to a String cannot fail.
                let _ = write!(
                    text,
                    "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n\n"
                );
            }
        };
        family(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            self.cpu_seconds.map(|v| v.to_string()),
        );
        family(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            self.resident_bytes.map(|v| v.to_string()),
        );
        family(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            self.open_fds.map(|v| v.to_string()),
        );
        family(
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            self.max_fds.map(|v| v.to_string()),
        );
        family(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            self.start_time_seconds.map(|v| v.to_string()),
        );
    }
}

/// Appends a fresh reading of the process metrics to `text`.
pub fn render_into(text: &mut String) {
    ProcessSample::read().render_into(text);
}

/// The fields of `/proc/self/stat` the metrics need, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Time in user mode.
    pub utime: u64,
    /// Time in kernel mode.
    pub stime: u64,
    /// Start time after boot.
    pub starttime: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may itself
/// hold spaces and parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let (_, rest) = text.rsplit_once(')')?;
    // `rest` starts at field 3 (state): field n is at index n - 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        utime: field(14)?,
        stime: field(15)?,
        starttime: field(22)?,
    })
}

/// The boot time (`btime`, seconds since the epoch) from `/proc/stat`.
pub fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|value| value.trim().parse().ok())
}

/// The resident set size in bytes from `/proc/<pid>/status` (`VmRSS:  1234 kB`).
pub fn parse_rss_bytes(text: &str) -> Option<u64> {
    let value = text.lines().find_map(|line| line.strip_prefix("VmRSS:"))?;
    let kib: u64 = value.split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

/// The soft limit of open files from `/proc/<pid>/limits`; `None` when unlimited.
pub fn parse_max_fds(text: &str) -> Option<u64> {
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))?;
    line.split_whitespace().next()?.parse().ok()
}

/// `AT_CLKTCK` from the auxiliary vector (`/proc/self/auxv`: native-endian pairs of words).
pub fn clock_ticks(auxv: &[u8]) -> Option<u64> {
    const WORD: usize = std::mem::size_of::<usize>();
    let word = |bytes: &[u8]| -> u64 {
        let mut buffer = [0u8; 8];
        if cfg!(target_endian = "little") {
            buffer[..WORD].copy_from_slice(bytes);
            u64::from_le_bytes(buffer)
        } else {
            buffer[8 - WORD..].copy_from_slice(bytes);
            u64::from_be_bytes(buffer)
        }
    };
    auxv.chunks_exact(2 * WORD)
        .map(|pair| (word(&pair[..WORD]), word(&pair[WORD..])))
        .find(|(key, _)| *key == AT_CLKTCK)
        .map(|(_, value)| value)
        .filter(|ticks| *ticks > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        // A command name with a space and a parenthesis, as a process may name itself.
        let text = "4242 (ring cast) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 \
                    9 0 123456 1000000 500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0";
        assert_eq!(
            parse_stat(text),
            Some(Stat {
                utime: 250,
                stime: 50,
                starttime: 123456
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn status_limits_and_stat_files_parse() {
        let status = "Name:\tringcast\nVmPeak:\t  20000 kB\nVmRSS:\t   12345 kB\nThreads:\t4\n";
        assert_eq!(parse_rss_bytes(status), Some(12345 * 1024));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_max_fds(limits), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_max_fds(unlimited), None);
        assert_eq!(
            parse_boot_time("cpu  1 2 3\nbtime 1764288000\nprocesses 9\n"),
            Some(1_764_288_000)
        );
    }

    #[test]
    fn clock_ticks_come_from_the_auxiliary_vector() {
        let mut auxv = Vec::new();
        for (key, value) in [(6usize, 4096usize), (17, 250), (0, 0)] {
            auxv.extend_from_slice(&key.to_ne_bytes());
            auxv.extend_from_slice(&value.to_ne_bytes());
        }
        assert_eq!(clock_ticks(&auxv), Some(250));
        assert_eq!(clock_ticks(&auxv[..2 * std::mem::size_of::<usize>()]), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_read_and_rendered() {
        let sample = ProcessSample::read();
        assert!(sample.resident_bytes.unwrap() > 0, "{sample:?}");
        assert!(sample.open_fds.unwrap() > 0, "{sample:?}");
        let started = sample.start_time_seconds.unwrap();
        // Started after 2020 and not in the future.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            started > 1_577_836_800.0 && started <= now + 1.0,
            "{started}"
        );
        let mut text = String::new();
        sample.render_into(&mut text);
        assert!(
            text.contains("# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total ")
        );
        assert!(text.contains("\nprocess_resident_memory_bytes "));
    }
}
