//! Fuzz targets for tcpool, run with `cargo fuzz run TARGET` (nightly,
//! libFuzzer):
//!
//! * [`framing`]: the line and length-prefix framing helpers under any
//!   input and any split;
//! * [`pool`]: the pure pool driven by arbitrary event sequences;
//! * [`server`]: the nb server over the fault-injecting stack wrapping the
//!   in-memory stack, with client actions from the input.
//!
//! Each target's checks live here, as a `run(&[u8])` that panics when an
//! invariant breaks; the binaries in `fuzz_targets/` only hand libFuzzer's
//! input to it. The unit tests replay the committed seed corpus
//! (`corpus/TARGET/`) and every input that once failed
//! (`regressions/TARGET/`) without libFuzzer, on any toolchain.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod framing;
pub mod pool;
pub mod script;
pub mod server;

/// A target's entry point: runs one input, panics on a broken invariant.
pub type Target = fn(&[u8]);

/// The targets, by name, as `cargo fuzz` knows them.
pub const TARGETS: [(&str, Target); 3] = [
    ("framing", framing::run),
    ("pool", pool::run),
    ("server", server::run),
];

#[cfg(test)]
mod replay {
    use std::path::Path;

    use super::TARGETS;

    /// Runs every file under `dir/TARGET/` through its target; returns
    /// how many ran.
    fn replay(dir: &str) -> usize {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut ran = 0;
        for (name, run) in TARGETS {
            let Ok(entries) = std::fs::read_dir(root.join(name)) else {
                continue;
            };
            let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
            files.sort();
            for file in files {
                let data = std::fs::read(&file).unwrap();
                eprintln!("replaying {}", file.display());
                run(&data);
                ran += 1;
            }
        }
        ran
    }

    #[test]
    fn seed_corpus_passes() {
        let ran = replay("corpus");
        assert!(
            ran >= TARGETS.len(),
            "the seed corpus is missing ({ran} files)"
        );
    }

    #[test]
    fn every_past_crash_stays_fixed() {
        replay("regressions");
    }
}
