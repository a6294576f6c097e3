//! Process facts from the OS: the open-file limit, resident memory, CPU time.
//!
//! The only `unsafe` of the crate lives here: a few libc calls with plain-data
//! arguments (`getrlimit`/`setrlimit`, `getrusage`, `sysconf`).

use std::io;
use std::time::Duration;

/// The soft and hard `RLIMIT_NOFILE` after trying to raise the soft one.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct FileLimit {
    pub soft: u64,
    pub hard: u64,
}

/// Raise the soft open-file limit to the hard limit (the hard one cannot be raised
/// without privileges this tool should not assume).
#[allow(unsafe_code)]
pub fn raise_nofile_limit() -> io::Result<FileLimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit struct for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit struct, only read by the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const raised) } != 0 {
            return Err(io::Error::last_os_error());
        }
        lim = raised;
    }
    Ok(FileLimit {
        soft: lim.rlim_cur,
        hard: lim.rlim_max,
    })
}

/// User and system CPU time of this process so far.
#[allow(unsafe_code)]
pub fn self_cpu_time() -> (Duration, Duration) {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage struct for the duration of the call.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &raw mut usage) } != 0 {
        return (Duration::ZERO, Duration::ZERO);
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.try_into().unwrap_or(0))
            + Duration::from_micros(t.tv_usec.try_into().unwrap_or(0))
    };
    (tv(usage.ru_utime), tv(usage.ru_stime))
}

/// `CLOCK_MONOTONIC` in nanoseconds: one clock for every process on this machine,
/// so a timestamp written by one generator process can be read by another.
#[allow(unsafe_code)]
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// User + system CPU time of another process, from `/proc/PID/stat`.
pub fn process_cpu_time(pid: u32) -> io::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let ticks = parse_stat_ticks(&stat)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unparsable /proc/PID/stat"))?;
    Ok(Duration::from_secs_f64(
        ticks as f64 / clock_ticks_per_sec() as f64,
    ))
}

/// `utime + stime` (fields 14 and 15; the command name in field 2 may hold spaces).
fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_comm.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[allow(unsafe_code)]
fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf takes a plain integer and has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz).ok().filter(|&h| h > 0).unwrap_or(100)
}

/// Memory figures of a process from `/proc/PID/status`, in KiB.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Memory {
    /// Resident set size now (`VmRSS`).
    pub rss_kib: u64,
    /// Peak resident set size (`VmHWM`).
    pub hwm_kib: u64,
}

/// Read `VmRSS` and `VmHWM` of `pid` (`None` = this process).
pub fn memory(pid: Option<u32>) -> io::Result<Memory> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".to_owned(),
    };
    parse_status(&std::fs::read_to_string(path)?)
}

fn parse_status(status: &str) -> io::Result<Memory> {
    let field = |name: &str| -> io::Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("no {name} kB")))
    };
    Ok(Memory {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_status() {
        let s = "Name:\tprosody\nVmHWM:\t   30000 kB\nVmRSS:\t   12345 kB\nThreads:\t1\n";
        let m = parse_status(s).unwrap();
        assert_eq!((m.rss_kib, m.hwm_kib), (12345, 30000));
        assert!(parse_status("Name:\tx\n").is_err());
    }

    #[test]
    fn parses_proc_stat() {
        let s = "42 (lua5.4 x) S 1 42 42 0 -1 4194560 1 0 0 0 250 50 0 0 20 0 1 0 1 1 1";
        assert_eq!(parse_stat_ticks(s), Some(300));
        assert!(process_cpu_time(std::process::id()).is_ok());
    }

    #[test]
    fn reads_own_memory_and_limits() {
        assert!(memory(None).unwrap().rss_kib > 0);
        let lim = raise_nofile_limit().unwrap();
        assert_eq!(lim.soft, lim.hard);
        let (user, _sys) = self_cpu_time();
        let (a, b) = (monotonic_ns(), monotonic_ns());
        assert!(a > 0 && b >= a);
        assert!(user < Duration::from_hours(1));
    }
}
