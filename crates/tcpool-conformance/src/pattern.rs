//! Patterned byte streams: every byte is a function of its offset and a
//! seed, so a receiver can verify a stream of any length byte by byte
//! without keeping a copy of what was sent.

use std::sync::OnceLock;
use std::vec::Vec;

/// The pattern's period: a prime, so that no power-of-two chunking lines up
/// with it (a lost, repeated or reordered chunk shows up as a mismatch).
const PERIOD: usize = 65_521;

fn table() -> &'static [u8] {
    static TABLE: OnceLock<Vec<u8>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = std::vec![0; PERIOD];
        fastrand::Rng::with_seed(0x007c_9001_5eed).fill(&mut table);
        table
    })
}

/// A patterned stream: byte `i` is `table[(i + rotation) % PERIOD]`, the
/// rotation chosen by the seed, so that different clients send different
/// streams.
///
/// ```
/// use tcpool_conformance::Pattern;
///
/// let p = Pattern::new(3);
/// let mut chunk = [0u8; 100];
/// p.fill(1_000, &mut chunk);
/// assert_eq!(p.check(1_000, &chunk), Ok(()));
/// assert_eq!(p.check(1_001, &chunk).unwrap_err() >= 1_001, true);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pattern {
    rotation: usize,
}

impl Pattern {
    /// The stream for `seed`.
    pub fn new(seed: u64) -> Self {
        Pattern {
            rotation: (seed.wrapping_mul(7_919) % PERIOD as u64) as usize,
        }
    }

    /// The byte at `offset`.
    pub fn byte_at(&self, offset: u64) -> u8 {
        table()[self.index(offset)]
    }

    fn index(&self, offset: u64) -> usize {
        ((offset % PERIOD as u64) as usize + self.rotation) % PERIOD
    }

    /// Writes the bytes at `offset..offset + out.len()` into `out`.
    pub fn fill(&self, offset: u64, out: &mut [u8]) {
        let table = table();
        let mut done = 0;
        while done < out.len() {
            let at = self.index(offset + done as u64);
            let n = (PERIOD - at).min(out.len() - done);
            out[done..done + n].copy_from_slice(&table[at..at + n]);
            done += n;
        }
    }

    /// The bytes at `offset..offset + len`.
    pub fn bytes(&self, offset: u64, len: usize) -> Vec<u8> {
        let mut v = std::vec![0; len];
        self.fill(offset, &mut v);
        v
    }

    /// Checks that `data` is the stream at `offset`; on a mismatch returns
    /// the stream offset of the first wrong byte.
    pub fn check(&self, offset: u64, data: &[u8]) -> Result<(), u64> {
        let table = table();
        let mut done = 0;
        while done < data.len() {
            let at = self.index(offset + done as u64);
            let n = (PERIOD - at).min(data.len() - done);
            let got = &data[done..done + n];
            let want = &table[at..at + n];
            if got != want {
                let i = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(0);
                return Err(offset + (done + i) as u64);
            }
            done += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_and_byte_at_agree_across_the_period_boundary() {
        let p = Pattern::new(11);
        let start = PERIOD as u64 - 10;
        let chunk = p.bytes(start, 30);
        for (i, b) in chunk.iter().enumerate() {
            assert_eq!(*b, p.byte_at(start + i as u64));
        }
    }

    #[test]
    fn a_shifted_or_corrupted_chunk_is_found_at_its_offset() {
        let p = Pattern::new(1);
        let mut chunk = p.bytes(500, 64);
        assert_eq!(p.check(500, &chunk), Ok(()));
        chunk[17] ^= 1;
        assert_eq!(p.check(500, &chunk), Err(517));
        assert!(p.check(501, &p.bytes(500, 64)).is_err());
    }

    #[test]
    fn seeds_give_different_streams() {
        assert_ne!(Pattern::new(1).bytes(0, 32), Pattern::new(2).bytes(0, 32));
    }
}
