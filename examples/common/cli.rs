//! The command line every example server shares, on every backend: the
//! pool flags, the usage text, the exit codes and the `stats ...` line.
//! Parsing is done by `lexopt`; each example adds its own flags (the std
//! examples `--listen`, the TAP example its network flags) through
//! [`Cli::parse_or_exit`].
//!
//! The interface is relied on by outside tests: extend it, never change it.
//! Exit codes: 0 after `--help` or a clean stop, 2 for a bad command line
//! (with `error: ...` and the usage on standard error), 1 for a failure at
//! run time.

use std::time::Duration;

use tcpool::{Config, Stats, WhenFull};

use super::flags::{self, Flag};

/// The pool flags in the usage synopsis.
const POOL_SYNOPSIS: &str = "[--max-connections N] [--when-full defer|reject|evict-idlest] \
[--idle-timeout-ms MS] [--min-idle-ms MS] [--max-per-ip N] [--request-timeout-ms MS] \
[--write-stall-ms MS]";

/// What the pool flags ask for.
#[derive(Debug, Clone, Copy)]
pub struct PoolArgs {
    /// `--max-connections`: clients served at once (default 4).
    pub max_connections: usize,
    /// `--when-full` with `--min-idle-ms`: what happens to a new client
    /// when the pool is full (default: it waits).
    pub when_full: WhenFull,
    /// `--idle-timeout-ms`: close a client silent this long (default never).
    pub idle_timeout: Option<Duration>,
    /// `--max-per-ip`: connections allowed from one client IP address
    /// (default no cap).
    pub max_per_ip: Option<usize>,
    /// `--request-timeout-ms`: how long a request may take to arrive
    /// (default none); each example says what a request is.
    pub request_timeout: Option<Duration>,
    /// `--write-stall-ms`: reset a client that takes none of its output
    /// for this long (default never).
    pub write_stall: Option<Duration>,
}

impl PoolArgs {
    /// The server configuration these flags ask for (a client refused
    /// because the pool is full under `reject` is told `busy`).
    pub fn config(&self) -> Config {
        Config::new()
            .with_max_connections(self.max_connections)
            .with_when_full(self.when_full)
            .with_idle_timeout(self.idle_timeout)
            .with_max_per_ip(self.max_per_ip)
            .with_write_stall(self.write_stall)
            .with_reject_banner(b"busy\n")
    }
}

/// The command line of one example: its own flags beside the pool flags.
pub struct Cli {
    /// Slots compiled into the example: `--max-connections` may use up to
    /// this many.
    pub pool: usize,
    /// The synopsis of the example's own flags, as in
    /// `--tap NAME [--listen-port PORT]`.
    pub synopsis: &'static str,
    /// One help line per own flag, each `  --flag VALUE` padded to column
    /// 25, then what it does.
    pub help: &'static str,
}

impl Cli {
    /// The usage text: the synopsis and one line per flag.
    pub fn usage(&self) -> String {
        format!(
            "usage: {} {POOL_SYNOPSIS}\n\n{}
  --max-connections N    clients served at once, 1..={} (default 4); more wait or are refused
  --when-full MODE       defer (default): new clients wait in the stack's backlog;
                         reject: accept, say `busy`, close; evict-idlest: close the
                         longest-idle client (idle at least --min-idle-ms) to make room
  --idle-timeout-ms MS   close a client silent for MS milliseconds (default 0 = never)
  --min-idle-ms MS       with evict-idlest: never evict a client idle less than this (default 1000)
  --max-per-ip N         at most N connections from one client IP address; more are
                         refused and counted in `refused` (default 0 = no cap)
  --request-timeout-ms MS  close a client whose request does not arrive within MS
                         milliseconds with reason request_timeout (echo: the first byte
                         after the accept; command: each line from its first byte, the
                         first line from the accept) (default 0 = off)
  --write-stall-ms MS    reset a client that takes none of its pending output for MS
                         milliseconds, reason write_stall (default 0 = never)",
            self.synopsis, self.help, self.pool
        )
    }

    /// Parses the process's arguments. Each flag that is not a pool flag
    /// goes to `own`, which takes its value and returns `Ok(true)`, or
    /// returns `Ok(false)` for a flag it does not know either.
    ///
    /// On `--help` prints the usage and exits with 0; on a mistake prints
    /// `error: ...` and the usage to standard error and exits with 2.
    pub fn parse_or_exit(
        &self,
        mut own: impl FnMut(&mut Flag<'_>) -> Result<bool, String>,
    ) -> PoolArgs {
        let usage = self.usage();
        let mut max_connections = 4usize;
        let mut mode = String::from("defer");
        let mut idle_ms = 0u64;
        let mut min_idle_ms = 1000u64;
        let mut max_per_ip = 0usize;
        let mut request_ms = 0u64;
        let mut stall_ms = 0u64;
        flags::parse_or_exit(&usage, |flag| {
            match flag.name() {
                "--max-connections" => {
                    max_connections = flag.parse("not a number")?;
                    if !(1..=self.pool).contains(&max_connections) {
                        let text = max_connections.to_string();
                        return Err(flag.bad(&text, &format!("must be 1..={}", self.pool)));
                    }
                }
                "--when-full" => mode = flag.text()?,
                "--idle-timeout-ms" => idle_ms = flag.parse("not a number")?,
                "--min-idle-ms" => min_idle_ms = flag.parse("not a number")?,
                "--max-per-ip" => max_per_ip = flag.parse("not a number")?,
                "--request-timeout-ms" => request_ms = flag.parse("not a number")?,
                "--write-stall-ms" => stall_ms = flag.parse("not a number")?,
                _ => return own(flag),
            }
            Ok(true)
        });
        let when_full = match mode.as_str() {
            "defer" => WhenFull::Defer,
            "reject" => WhenFull::Reject,
            "evict-idlest" => WhenFull::EvictIdlest {
                min_idle: Duration::from_millis(min_idle_ms),
            },
            other => flags::fail(
                &usage,
                &format!("--when-full: expected defer, reject or evict-idlest, got {other:?}"),
            ),
        };
        PoolArgs {
            max_connections,
            when_full,
            idle_timeout: (idle_ms > 0).then(|| Duration::from_millis(idle_ms)),
            max_per_ip: (max_per_ip > 0).then_some(max_per_ip),
            request_timeout: (request_ms > 0).then(|| Duration::from_millis(request_ms)),
            write_stall: (stall_ms > 0).then(|| Duration::from_millis(stall_ms)),
        }
    }
}

/// Prints the counters in one line:
/// `stats accepted=.. refused=.. evicted=.. deferred=.. accept_errors=..
/// bytes_in=.. bytes_out=.. peak_active=.. closed=REASON:N,...` (`closed=-`
/// when nothing closed).
pub fn print_stats(stats: &Stats) {
    let closed: Vec<String> = stats
        .closed
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(r, n)| format!("{r}:{n}"))
        .collect();
    println!(
        "stats accepted={} refused={} evicted={} deferred={} accept_errors={} bytes_in={} bytes_out={} peak_active={} closed={}",
        stats.accepted,
        stats.refused,
        stats.evicted,
        stats.deferred,
        stats.accept_errors,
        stats.bytes_in,
        stats.bytes_out,
        stats.peak_active,
        if closed.is_empty() {
            "-".to_string()
        } else {
            closed.join(",")
        }
    );
}
