//! What Linux's `/proc` tells about a process (read with the `procfs`
//! crate): its resident memory, the CPU time it has used, and this
//! process's open-file limit. The `fanout` scenario reads the server's
//! memory before and after its clients connect, and both processes' CPU
//! over the measured phase.

use std::io;
use std::time::Duration;

/// A process to read: another one by pid, or this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    /// Another process.
    Pid(u32),
    /// The load generator itself.
    Current,
}

/// This process's limit on open files (sockets included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFilesLimit {
    /// What it may open now.
    pub soft: u64,
    /// What the soft limit may be raised to.
    pub hard: u64,
}

impl Process {
    fn open(self) -> io::Result<procfs::process::Process> {
        match self {
            Self::Pid(pid) => {
                let pid = i32::try_from(pid).map_err(|_| invalid("a pid beyond i32"))?;
                procfs::process::Process::new(pid).map_err(io::Error::other)
            }
            Self::Current => procfs::process::Process::myself().map_err(io::Error::other),
        }
    }

    /// Resident memory (`VmRSS`), in bytes.
    pub fn resident_bytes(self) -> io::Result<u64> {
        let status = self.open()?.status().map_err(io::Error::other)?;
        let kibibytes = status
            .vmrss
            .ok_or_else(|| invalid("no VmRSS in its status"))?;
        Ok(kibibytes * 1_024)
    }

    /// User plus system CPU time used so far.
    pub fn cpu_time(self) -> io::Result<Duration> {
        let stat = self.open()?.stat().map_err(io::Error::other)?;
        let ticks = stat.utime + stat.stime;
        let per_second = procfs::ticks_per_second().max(1);
        Ok(Duration::from_micros(ticks * 1_000_000 / per_second))
    }
}

/// This process's open-file limit.
pub fn open_files_limit() -> io::Result<OpenFilesLimit> {
    let limits = Process::Current
        .open()?
        .limits()
        .map_err(io::Error::other)?;
    let value = |limit: procfs::process::LimitValue| match limit {
        procfs::process::LimitValue::Unlimited => u64::MAX,
        procfs::process::LimitValue::Value(value) => value,
    };
    Ok(OpenFilesLimit {
        soft: value(limits.max_open_files.soft_limit),
        hard: value(limits.max_open_files.hard_limit),
    })
}

/// The process's CPU use between two readings, in percent of one core.
pub fn cpu_percent(before: Duration, after: Duration, wall: Duration) -> f64 {
    let wall = wall.as_secs_f64();
    if wall <= 0.0 {
        return 0.0;
    }
    after.saturating_sub(before).as_secs_f64() / wall * 100.0
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_and_its_parent_can_be_read() {
        let me = Process::Current;
        assert!(me.resident_bytes().is_ok_and(|bytes| bytes > 0));
        assert!(me.cpu_time().is_ok());
        assert!(open_files_limit().is_ok_and(|limit| limit.soft <= limit.hard));
        let parent = Process::Pid(std::os::unix::process::parent_id());
        assert!(parent.resident_bytes().is_ok_and(|bytes| bytes > 0));
        assert!(Process::Pid(u32::MAX).resident_bytes().is_err());
    }

    #[test]
    fn cpu_percent_is_of_one_core() {
        let percent = cpu_percent(
            Duration::from_secs(1),
            Duration::from_secs(4),
            Duration::from_secs(2),
        );
        assert!((percent - 150.0).abs() < 1e-9);
        assert_eq!(
            cpu_percent(Duration::ZERO, Duration::ZERO, Duration::ZERO),
            0.0
        );
    }
}
