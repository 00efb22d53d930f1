//! Reading a process's CPU time and memory from `/proc`, as the figures of
//! the report are defined: CPU = `utime + stime` of `/proc/<pid>/stat`,
//! memory = `VmRSS` / `VmHWM` of `/proc/<pid>/status`.

use std::path::Path;

/// Clock ticks per second of the `/proc/<pid>/stat` time fields. Linux
/// exports them in USER_HZ, which is 100 on every architecture it ships
/// for userspace (the kernel's own HZ is hidden behind it).
pub const CLOCK_TICKS_PER_SEC: f64 = 100.0;

#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("reading {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("malformed {what}: {detail}")]
    Malformed { what: &'static str, detail: String },
}

/// CPU time of a process, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTicks {
    pub utime: u64,
    pub stime: u64,
}

impl CpuTicks {
    pub fn seconds(&self) -> f64 {
        (self.utime + self.stime) as f64 / CLOCK_TICKS_PER_SEC
    }
}

/// Memory figures of a process, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub rss: u64,
    pub hwm: u64,
}

/// Parses the text of `/proc/<pid>/stat`. The command name (field 2) is in
/// parentheses and may itself contain spaces and parentheses, so fields are
/// counted from the last `)`.
pub fn parse_stat(text: &str) -> Result<CpuTicks, ProcError> {
    let malformed = |detail: &str| ProcError::Malformed { what: "stat", detail: detail.to_owned() };
    let close = text.rfind(')').ok_or_else(|| malformed("no ')' after the command name"))?;
    // After ")": field 3 (state) is the first; utime and stime are fields 14 and 15.
    let mut fields = text[close + 1..].split_ascii_whitespace();
    let mut nth = |n: usize| fields.nth(n).ok_or_else(|| malformed("too few fields"));
    let utime = nth(11)?;
    let stime = nth(0)?;
    let num = |s: &str| s.parse::<u64>().map_err(|e| malformed(&format!("{s:?}: {e}")));
    Ok(CpuTicks { utime: num(utime)?, stime: num(stime)? })
}

/// Parses the text of `/proc/<pid>/status` for `VmRSS` and `VmHWM` (kB).
pub fn parse_status(text: &str) -> Result<Memory, ProcError> {
    let field = |key: &str| -> Result<u64, ProcError> {
        let malformed = |detail: String| ProcError::Malformed { what: "status", detail };
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
            .ok_or_else(|| malformed(format!("no {key} line")))?;
        let mut parts = line.split_ascii_whitespace();
        let kb = parts.next().ok_or_else(|| malformed(format!("empty {key}")))?;
        let kb: u64 = kb.parse().map_err(|e| malformed(format!("{key} {kb:?}: {e}")))?;
        match parts.next() {
            Some("kB") => Ok(kb * 1024),
            other => Err(malformed(format!("{key}: unit {other:?}, want kB"))),
        }
    };
    Ok(Memory { rss: field("VmRSS")?, hwm: field("VmHWM")? })
}

fn read(path: String) -> Result<String, ProcError> {
    std::fs::read_to_string(&path).map_err(|source| ProcError::Io { path, source })
}

pub fn cpu(pid: u32) -> Result<CpuTicks, ProcError> {
    parse_stat(&read(format!("/proc/{pid}/stat"))?)
}

pub fn memory(pid: u32) -> Result<Memory, ProcError> {
    parse_status(&read(format!("/proc/{pid}/status"))?)
}

/// Bytes used by the regular files under `dir` (apparent sizes, recursively;
/// symlinks are not followed).
pub fn dir_bytes(dir: &Path) -> Result<u64, ProcError> {
    let io = |source| ProcError::Io { path: dir.display().to_string(), source };
    let mut total = 0;
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let ft = entry.file_type().map_err(io)?;
        if ft.is_dir() {
            total += dir_bytes(&entry.path())?;
        } else if ft.is_file() {
            total += entry.metadata().map_err(io)?.len();
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_command_name_with_spaces_and_parens() {
        let text = "4242 (my (odd) prog) S 1 4242 4242 0 -1 4194560 1234 0 5 0 731 96 0 0 20 0 7 0 \
                    12345 123456789 2345 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n";
        let t = parse_stat(text).unwrap();
        assert_eq!(t, CpuTicks { utime: 731, stime: 96 });
        assert!((t.seconds() - 8.27).abs() < 1e-9);
    }

    #[test]
    fn stat_errors_are_values() {
        assert!(parse_stat("").is_err());
        assert!(parse_stat("1 (x) S 1 2").is_err());
        assert!(parse_stat("1 (x) S 1 2 3 4 5 6 7 8 9 10 abc 5 0").is_err());
    }

    #[test]
    fn status_memory_in_bytes() {
        let text =
            "Name:\tprometheus\nVmPeak:\t  999 kB\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads: 9\n";
        let m = parse_status(text).unwrap();
        assert_eq!(m, Memory { rss: 100 * 1024 * 1024, hwm: 200 * 1024 * 1024 });
        assert!(parse_status("VmRSS:\t1 kB\n").is_err(), "VmHWM missing");
        assert!(parse_status("VmRSS:\t1 MB\nVmHWM:\t1 kB\n").is_err(), "unit");
    }

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        // Burn a little CPU so utime is observable in the own process.
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu(me).is_ok());
        let m = memory(me).unwrap();
        assert!(m.rss > 0 && m.hwm >= m.rss);
    }

    #[test]
    fn dir_bytes_sums_nested_files() {
        let dir = std::env::temp_dir().join(format!("ember-bench-du-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        std::fs::write(dir.join("x"), vec![0u8; 100]).unwrap();
        std::fs::write(dir.join("a/b/y"), vec![0u8; 23]).unwrap();
        assert_eq!(dir_bytes(&dir).unwrap(), 123);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
