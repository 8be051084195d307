//! The examples' command-line parsing, on `lexopt`: `--flag VALUE` (or
//! `--flag=VALUE`) pairs, `--help`, and the error convention every example
//! follows: on a mistake `error: ...` and the usage on standard error and
//! exit code 2; after `--help` the usage on standard output and exit code
//! 0. The servers' shared flags are in `cli.rs`, built on this.

use std::str::FromStr;

/// The flag being parsed, handed to an example's own flag handler.
pub struct Flag<'a> {
    name: String,
    parser: &'a mut lexopt::Parser,
}

impl Flag<'_> {
    /// The flag as written, with its dashes (`--listen`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The flag's value as text.
    pub fn text(&mut self) -> Result<String, String> {
        let value = self
            .parser
            .value()
            .map_err(|_| format!("{} needs a value", self.name))?;
        value
            .into_string()
            .map_err(|v| format!("{}: not valid text: {v:?}", self.name))
    }

    /// The flag's value parsed as a `T`; `what` says what is wrong when it
    /// does not parse (`"not a number"`).
    pub fn parse<T: FromStr>(&mut self, what: &str) -> Result<T, String> {
        let text = self.text()?;
        text.parse().map_err(|_| self.bad(&text, what))
    }

    /// The error message for a bad value `text` of this flag.
    pub fn bad(&self, text: &str, what: &str) -> String {
        format!("{}: {what}: {text:?}", self.name)
    }
}

/// Parses the process's arguments: each `--flag` goes to `take`, which
/// takes its value and returns `Ok(true)`, or returns `Ok(false)` for a
/// flag it does not know. Positional arguments are refused.
///
/// On `--help` or `-h` prints `usage` and exits with 0; on a mistake
/// exits through [`fail`].
pub fn parse_or_exit(usage: &str, mut take: impl FnMut(&mut Flag<'_>) -> Result<bool, String>) {
    let mut parser = lexopt::Parser::from_env();
    let mut next = || -> Result<bool, String> {
        let Some(arg) = parser.next().map_err(|e| e.to_string())? else {
            return Ok(false);
        };
        let name = match arg {
            lexopt::Arg::Long("help") | lexopt::Arg::Short('h') => {
                println!("{usage}");
                std::process::exit(0);
            }
            lexopt::Arg::Long(name) => format!("--{name}"),
            lexopt::Arg::Short(c) => return Err(format!("unknown flag -{c}")),
            lexopt::Arg::Value(v) => return Err(format!("unexpected argument {v:?}")),
        };
        let mut flag = Flag {
            name,
            parser: &mut parser,
        };
        if take(&mut flag)? {
            Ok(true)
        } else {
            Err(format!("unknown flag {}", flag.name()))
        }
    };
    loop {
        match next() {
            Ok(true) => {}
            Ok(false) => return,
            Err(msg) => fail(usage, &msg),
        }
    }
}

/// Reports a bad command line: `error: msg` and the usage on standard
/// error, exit code 2. Also for mistakes found after parsing (a required
/// flag missing).
pub fn fail(usage: &str, msg: &str) -> ! {
    eprintln!("error: {msg}\n{usage}");
    std::process::exit(2);
}
