//! What the machine can hold, for default limits: the kernel's accept-queue cap (`somaxconn`,
//! the listen backlog a socket can actually get) and the process' open-file limit (each tunnel
//! costs file descriptors, so a connection cap above what the descriptors allow only turns
//! refusals into `EMFILE` accept failures).
//!
//! Read from `/proc` on Linux; elsewhere the conservative fallbacks apply. Reading fails
//! softly: a limit that cannot be read is never an error.

/// Backlog used when `somaxconn` cannot be read (Linux' default since 5.4).
pub const FALLBACK_BACKLOG: u32 = 4096;

/// Open-file limit assumed when it cannot be read (a common default soft limit).
pub const FALLBACK_OPEN_FILES: u64 = 1024;

/// Descriptors kept back for everything that is not a tunnel (log files, relay connections,
/// the listening socket, resolver, state files).
pub const RESERVED_FILES: u64 = 64;

/// The largest listen backlog the kernel grants (`net.core.somaxconn`).
pub fn somaxconn() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(FALLBACK_BACKLOG)
}

/// The process' soft limit on open files (`RLIMIT_NOFILE`, from `/proc/self/limits`). Windows
/// has no such limit for sockets (handles are bounded by memory), so there the callers'
/// ceilings apply.
#[cfg(windows)]
pub fn open_files_limit() -> u64 {
    u64::MAX
}

/// The process' soft limit on open files (`RLIMIT_NOFILE`, from `/proc/self/limits`).
#[cfg(not(windows))]
pub fn open_files_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| parse_open_files(&text))
        .unwrap_or(FALLBACK_OPEN_FILES)
}

/// The soft "Max open files" of a `/proc/self/limits` text (`unlimited` → `u64::MAX`).
#[cfg(any(not(windows), test))]
fn parse_open_files(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    if soft == "unlimited" {
        return Some(u64::MAX);
    }
    soft.parse().ok()
}

/// How many tunnels the descriptors allow when each costs `files_per_tunnel`, at most
/// `ceiling` (memory: see `docs/reliability.md` for the measured cost of a tunnel).
pub fn tunnels_for_files(files_per_tunnel: u64, ceiling: usize) -> usize {
    let usable = open_files_limit().saturating_sub(RESERVED_FILES);
    let tunnels = usable / files_per_tunnel.max(1);
    usize::try_from(tunnels)
        .unwrap_or(usize::MAX)
        .clamp(1, ceiling)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_text_is_read_and_unreadable_limits_fall_back() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max processes             95000                95000                processes \n\
                    Max open files            20000                524288               files     \n";
        assert_eq!(parse_open_files(text), Some(20_000));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_open_files(unlimited), Some(u64::MAX));
        assert_eq!(parse_open_files("Max processes 1 1 processes"), None);
        assert!(somaxconn() > 0);
        assert!(tunnels_for_files(2, 100) <= 100);
        assert!(tunnels_for_files(0, 100) >= 1);
    }
}
