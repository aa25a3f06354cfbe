//! The generator's own CPU time, so a report says whether the generator, sharing the machine
//! with the node it measures, took the CPU the node needed (`generator_cpu_cores`).

/// User + system CPU seconds this process has used, all threads (`/proc/self/stat`); `None`
/// where there is no procfs.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name, field 2, is in parentheses and may hold spaces: count from its end.
    let mut fields = stat.get(stat.rfind(')')? + 2..)?.split_whitespace();
    // utime and stime are fields 14 and 15 of proc(5), the 12th and 13th after the name.
    let user: u64 = fields.nth(11)?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    // In USER_HZ ticks, which Linux fixes at 100 for every architecture's user ABI.
    Some((user + system) as f64 / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_shows_as_cpu_time() {
        let Some(before) = cpu_seconds() else {
            return; // No procfs: nothing to read.
        };
        // Spin until the clock moves (ticks are 10 ms); bounded so a broken reading fails.
        let mut after = before;
        let mut spins = 0u64;
        while after <= before && spins < 2_000_000_000 {
            spins = std::hint::black_box(spins + 1);
            if spins.is_multiple_of(1_000_000) {
                after = cpu_seconds().unwrap_or(before);
            }
        }
        assert!(after > before, "no CPU time counted after {spins} spins");
    }
}
