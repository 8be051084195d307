//! The command line of the TAP examples (smoltcp and embassy-net): the
//! network flags beside the pool flags of every example.

use std::net::Ipv4Addr;

use super::cli::{Cli, PoolArgs};
use super::flags;

/// The network flags' synopsis.
const SYNOPSIS: &str = "--tap NAME --ip ADDR/PREFIX [--gateway ADDR] [--listen-port PORT]";

/// One help line per network flag.
const HELP: &str =
    "  --tap NAME             TAP device to attach to (created if missing; needs root then)
  --ip ADDR/PREFIX       the server side's address, e.g. 10.123.0.2/24
  --gateway ADDR         default route for the server side (optional)
  --listen-port PORT     port to listen on (default 7000)";

/// The command line: the network flags and the pool flags.
pub struct TapArgs {
    /// `--tap`: the TAP device.
    pub tap: String,
    /// `--ip`: the server side's address...
    pub ip: Ipv4Addr,
    /// ...and its prefix length.
    pub prefix: u8,
    /// `--gateway`: the default route, if any.
    pub gateway: Option<Ipv4Addr>,
    /// `--listen-port`: the port to listen on.
    pub port: u16,
    /// The pool flags.
    pub pool: PoolArgs,
}

impl TapArgs {
    /// Parses the process arguments for a server of `pool` slots; prints
    /// usage and exits on a mistake (exit code 2) or after `--help` (exit
    /// code 0).
    pub fn parse(pool: usize) -> TapArgs {
        let cli = Cli {
            pool,
            synopsis: SYNOPSIS,
            help: HELP,
        };
        let mut tap = None;
        let mut cidr = None;
        let mut gateway = None;
        let mut port = 7000u16;
        let pool = cli.parse_or_exit(|flag| {
            match flag.name() {
                "--tap" => tap = Some(flag.text()?),
                "--ip" => {
                    let text = flag.text()?;
                    let (ip, prefix) = text
                        .split_once('/')
                        .ok_or_else(|| flag.bad(&text, "expected ADDR/PREFIX"))?;
                    let ip: Ipv4Addr = ip
                        .parse()
                        .map_err(|_| flag.bad(&text, "not an IPv4 address"))?;
                    let prefix: u8 = prefix
                        .parse()
                        .ok()
                        .filter(|p| *p <= 32)
                        .ok_or_else(|| flag.bad(&text, "bad prefix length"))?;
                    cidr = Some((ip, prefix));
                }
                "--gateway" => gateway = Some(flag.parse("not an IPv4 address")?),
                "--listen-port" => {
                    port = flag.parse("not a port")?;
                    if port == 0 {
                        return Err(flag.bad("0", "port 0 is not a port to listen on"));
                    }
                }
                _ => return Ok(false),
            }
            Ok(true)
        });
        let required =
            |flag: &str| -> ! { flags::fail(&cli.usage(), &format!("{flag} is required")) };
        let tap = tap.unwrap_or_else(|| required("--tap"));
        let (ip, prefix) = cidr.unwrap_or_else(|| required("--ip"));
        TapArgs {
            tap,
            ip,
            prefix,
            gateway,
            port,
            pool,
        }
    }
}
