//! What Linux's `/proc` tells about a process: its resident memory, the
//! CPU time it has used, and this process's open-file limit. The `fanout`
//! scenario reads the server's memory before and after its clients
//! connect, and both processes' CPU over the measured phase.

use std::io;
use std::time::Duration;

/// `/proc/<pid>/stat` counts CPU time in clock ticks of `USER_HZ`, which
/// Linux fixes at 100 for user space on every architecture it runs on.
const TICKS_PER_SECOND: u64 = 100;

/// A process to read: another one by pid, or this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    /// Another process.
    Pid(u32),
    /// The load generator itself.
    Current,
}

/// This process's limit on open files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFilesLimit {
    /// What applies now.
    pub soft: u64,
    /// What the soft limit may be raised to (`ulimit -n`).
    pub hard: u64,
}

impl Process {
    fn path(self, file: &str) -> String {
        match self {
            Self::Pid(pid) => format!("/proc/{pid}/{file}"),
            Self::Current => format!("/proc/self/{file}"),
        }
    }

    /// Resident memory (`VmRSS`), in bytes.
    pub fn resident_bytes(self) -> io::Result<u64> {
        let status = std::fs::read_to_string(self.path("status"))?;
        parse_resident_bytes(&status).ok_or_else(|| malformed("no VmRSS line in its status"))
    }

    /// User plus system CPU time used so far.
    pub fn cpu_time(self) -> io::Result<Duration> {
        let stat = std::fs::read_to_string(self.path("stat"))?;
        let ticks = parse_cpu_ticks(&stat).ok_or_else(|| malformed("an unreadable stat line"))?;
        Ok(Duration::from_millis(ticks * 1_000 / TICKS_PER_SECOND))
    }
}

/// The open-file limit of this process, from `/proc/self/limits`.
pub fn open_files_limit() -> io::Result<OpenFilesLimit> {
    let limits = std::fs::read_to_string("/proc/self/limits")?;
    parse_open_files_limit(&limits).ok_or_else(|| malformed("no Max open files line"))
}

/// The process's CPU use between two readings, in percent of one core.
pub fn cpu_percent(before: Duration, after: Duration, wall: Duration) -> f64 {
    let wall = wall.as_secs_f64();
    if wall <= 0.0 {
        return 0.0;
    }
    after.saturating_sub(before).as_secs_f64() / wall * 100.0
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// `VmRSS:   123456 kB` → bytes.
fn parse_resident_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let mut words = line.split_whitespace().skip(1);
    let kibibytes: u64 = words.next()?.parse().ok()?;
    (words.next()? == "kB").then_some(kibibytes * 1_024)
}

/// Fields 14 and 15 (`utime`, `stime`) of a stat line. The command name
/// (field 2) is in parentheses and may hold spaces, so counting starts
/// after its closing parenthesis, at field 3.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

/// `Max open files   20000   20000   files`; "unlimited" reads as `u64::MAX`.
fn parse_open_files_limit(limits: &str) -> Option<OpenFilesLimit> {
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    let mut values = line["Max open files".len()..]
        .split_whitespace()
        .map(|value| match value {
            "unlimited" => Some(u64::MAX),
            number => number.parse().ok(),
        });
    Some(OpenFilesLimit {
        soft: values.next()??,
        hard: values.next()??,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_memory_reads_in_bytes() {
        let status = "Name:\tbidask\nVmPeak:\t  900 kB\nVmRSS:\t   12345 kB\nThreads:\t4\n";
        assert_eq!(parse_resident_bytes(status), Some(12_345 * 1_024));
        assert_eq!(parse_resident_bytes("Name:\tx\n"), None);
    }

    #[test]
    fn cpu_ticks_are_counted_after_the_command_name() {
        let stat =
            "28530 (a (weird) name) R 28524 28524 17507 0 -1 4194304 99 0 0 0 250 31 0 0 20 0 1 0";
        assert_eq!(parse_cpu_ticks(stat), Some(281));
    }

    #[test]
    fn the_open_files_line_reads_both_limits() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \nMax open files            1024                 20000                files     \n";
        assert_eq!(
            parse_open_files_limit(limits),
            Some(OpenFilesLimit {
                soft: 1_024,
                hard: 20_000
            })
        );
    }

    #[test]
    fn this_process_can_be_read() {
        let me = Process::Current;
        assert!(me.resident_bytes().is_ok_and(|bytes| bytes > 0));
        assert!(me.cpu_time().is_ok());
        assert!(open_files_limit().is_ok_and(|limit| limit.soft <= limit.hard));
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
