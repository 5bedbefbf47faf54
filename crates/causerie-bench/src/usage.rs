//! What a process has cost so far, from `/proc`: CPU time (user and system, all threads) and
//! resident memory. Read before and after a step, the difference charges the step.

use std::time::Duration;

use procfs::process::Process;

/// A process's CPU time and resident memory at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// User plus system CPU time since the process started (10 ms resolution on most kernels).
    pub cpu: Duration,
    /// Resident set size.
    pub rss_bytes: u64,
}

/// The usage of process `pid`.
pub fn of(pid: u32) -> Result<Usage, procfs::ProcError> {
    let pid = i32::try_from(pid).map_err(|_| procfs::ProcError::NotFound(None))?;
    read(&Process::new(pid)?)
}

/// The usage of the load generator itself.
pub fn of_self() -> Result<Usage, procfs::ProcError> {
    read(&Process::myself()?)
}

fn read(process: &Process) -> Result<Usage, procfs::ProcError> {
    let stat = process.stat()?;
    let ticks = stat.utime + stat.stime;
    Ok(Usage {
        cpu: Duration::from_secs_f64(ticks as f64 / procfs::ticks_per_second() as f64),
        rss_bytes: stat.rss * procfs::page_size(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_shows_as_cpu_time_and_memory_as_resident() {
        let before = of_self().expect("reads /proc/self");
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(120) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let after = of(std::process::id()).expect("reads /proc/<pid>");
        assert!(
            after.cpu >= before.cpu + Duration::from_millis(50),
            "{before:?} {after:?}"
        );
        assert!(after.rss_bytes > 1 << 20, "{after:?}");
    }
}
