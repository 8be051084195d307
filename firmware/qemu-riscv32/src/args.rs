//! The command line, read from the device tree's `/chosen/bootargs` (QEMU's
//! `-append`): the flags of the host `echo` example, meaning the same.

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use tcpool_core::{Config, WhenFull};

/// Slots compiled into the firmware; `--max-connections` may use up to this many.
pub const POOL: usize = 8;

/// The address the firmware takes when `--listen` names none (`0.0.0.0`):
/// the guest address of QEMU's user-mode network.
pub const DEFAULT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
/// The port it listens on by default.
pub const DEFAULT_PORT: u16 = 7000;

/// Usage text, printed after an error and for `--help`.
pub const USAGE: &str = "usage: [--listen ADDR] [--max-connections N] \
[--when-full defer|reject|evict-idlest] [--idle-timeout-ms MS] [--min-idle-ms MS] [--max-per-ip N] \
[--request-timeout-ms MS] [--write-stall-ms MS]

  --listen ADDR          the firmware's IPv4 address and port (default 10.0.2.15:7000;
                         0.0.0.0 means 10.0.2.15); the subnet is /24, the gateway .2
  --max-connections N    clients served at once, 1..=8 (default 4); more wait or are refused
  --when-full MODE       defer (default): new clients wait in the stack's backlog;
                         reject: accept, say `busy`, close; evict-idlest: close the
                         longest-idle client (idle at least --min-idle-ms) to make room
  --idle-timeout-ms MS   close a client silent for MS milliseconds (default 0 = never)
  --min-idle-ms MS       with evict-idlest: never evict a client idle less than this (default 1000)
  --max-per-ip N         at most N clients from one IP address at once (default 0 = no cap)
  --request-timeout-ms MS  close a client whose first byte does not arrive within MS
                         milliseconds of the accept, reason request_timeout (default 0 = off)
  --write-stall-ms MS    reset a client that takes none of its pending output for MS
                         milliseconds, reason write_stall (default 0 = never)";

/// What went wrong with the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgError<'a> {
    /// `--help` or `-h`: not an error, the usage is wanted.
    Help,
    /// A flag without its value.
    MissingValue(&'a str),
    /// A flag this firmware does not know.
    UnknownFlag(&'a str),
    /// A value that does not fit its flag: the flag, what is wrong, the value.
    BadValue(&'a str, &'static str, &'a str),
}

impl core::fmt::Display for ArgError<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ArgError::Help => f.write_str("help wanted"),
            ArgError::MissingValue(flag) => write!(f, "{flag} needs a value"),
            ArgError::UnknownFlag(flag) => write!(f, "unknown flag {flag}"),
            ArgError::BadValue(flag, what, value) => write!(f, "{flag}: {what}: {value:?}"),
        }
    }
}

/// The parsed command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args {
    /// The firmware's address and port.
    pub listen: SocketAddrV4,
    /// Clients served at once, `1..=POOL`.
    pub max_connections: usize,
    /// What happens to a client when all slots are taken.
    pub when_full: WhenFull,
    /// Close a silent client after this long.
    pub idle_timeout: Option<Duration>,
    /// At most this many clients per IP address.
    pub max_per_ip: Option<usize>,
    /// A client's first byte must arrive within this many milliseconds of
    /// the accept (0: no limit).
    pub request_timeout_ms: u64,
    /// Reset a client that takes none of its output for this long.
    pub write_stall: Option<Duration>,
}

impl Args {
    /// Parses whitespace-separated flags.
    pub fn parse(line: &str) -> Result<Args, ArgError<'_>> {
        let mut listen = SocketAddrV4::new(DEFAULT_IP, DEFAULT_PORT);
        let mut max_connections = 4;
        let mut mode = "defer";
        let mut idle_ms = 0u64;
        let mut min_idle_ms = 1000u64;
        let mut max_per_ip = 0usize;
        let mut request_timeout_ms = 0u64;
        let mut stall_ms = 0u64;
        let mut it = line.split_ascii_whitespace();
        while let Some(flag) = it.next() {
            if flag == "--help" || flag == "-h" {
                return Err(ArgError::Help);
            }
            let value = it.next().ok_or(ArgError::MissingValue(flag))?;
            let bad = |what| ArgError::BadValue(flag, what, value);
            let number = || value.parse::<u64>().map_err(|_| bad("not a number"));
            match flag {
                "--listen" => {
                    listen = value
                        .parse()
                        .map_err(|_| bad("not an IPv4 address and port like 10.0.2.15:7000"))?;
                    if listen.ip().is_unspecified() {
                        listen.set_ip(DEFAULT_IP);
                    }
                    if listen.port() == 0 {
                        return Err(bad("the firmware needs a port to listen on"));
                    }
                }
                "--max-connections" => {
                    max_connections = usize::try_from(number()?).unwrap_or(usize::MAX);
                    if !(1..=POOL).contains(&max_connections) {
                        return Err(bad("must be 1..=8"));
                    }
                }
                "--when-full" => mode = value,
                "--idle-timeout-ms" => idle_ms = number()?,
                "--min-idle-ms" => min_idle_ms = number()?,
                "--max-per-ip" => max_per_ip = usize::try_from(number()?).unwrap_or(usize::MAX),
                "--request-timeout-ms" => request_timeout_ms = number()?,
                "--write-stall-ms" => stall_ms = number()?,
                _ => return Err(ArgError::UnknownFlag(flag)),
            }
        }
        let when_full = match mode {
            "defer" => WhenFull::Defer,
            "reject" => WhenFull::Reject,
            "evict-idlest" => WhenFull::EvictIdlest {
                min_idle: Duration::from_millis(min_idle_ms),
            },
            other => {
                return Err(ArgError::BadValue(
                    "--when-full",
                    "expected defer, reject or evict-idlest",
                    other,
                ));
            }
        };
        Ok(Args {
            listen,
            max_connections,
            when_full,
            idle_timeout: (idle_ms > 0).then(|| Duration::from_millis(idle_ms)),
            max_per_ip: (max_per_ip > 0).then_some(max_per_ip),
            request_timeout_ms,
            write_stall: (stall_ms > 0).then(|| Duration::from_millis(stall_ms)),
        })
    }

    /// The server configuration these flags ask for.
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
