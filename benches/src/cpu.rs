//! CPU time of this process, user plus system, from `/proc/self/stat`.

use std::time::Duration;

/// Clock ticks per second of `/proc`'s times: `USER_HZ`, 100 on every Linux
/// architecture's user ABI.
const TICKS_PER_SECOND: u64 = 100;

/// CPU time this process has used so far, all threads, user plus system.
/// Resolution 10 ms; `None` where `/proc` is unavailable.
pub fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; the rest follow its ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_ascii_whitespace();
    // `rest` starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis(
        (utime + stime) * 1000 / TICKS_PER_SECOND,
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_a_plausible_cpu_time() {
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let t = super::process_cpu_time().expect("/proc/self/stat");
        assert!(t.as_secs() < 3600, "{t:?}");
    }
}
