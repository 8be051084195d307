//! Framing helpers that turn a byte stream into messages without a heap.
//!
//! TCP delivers a stream, not messages: one `receive` may hold half a line or
//! three of them. A [`Handler`](crate::Handler) gets all unconsumed input in
//! one slice and returns how much it used; these helpers find the complete
//! frames at the front of that slice and report how many bytes they cover,
//! so the rest stays buffered until more arrives. They are correct under any
//! split of the input.
//!
//! ```
//! use tcpool_core::framing::Lines;
//!
//! let mut lines = Lines::new(b"PING\r\nGET_TEMP\nPAR", 128);
//! assert_eq!(lines.next(), Some(Ok(&b"PING"[..])));
//! assert_eq!(lines.next(), Some(Ok(&b"GET_TEMP"[..])));
//! assert_eq!(lines.next(), None); // "PAR" waits for its newline
//! assert_eq!(lines.consumed(), 15);
//! ```

use core::time::Duration;

use crate::error::FrameError;
use crate::handler::Conn;

/// The usual request-deadline policy of a line protocol, on top of
/// [`Conn::set_deadline`]: the first line must be complete within `timeout`
/// of the accept, and every later line within `timeout` of its first byte.
/// Time between lines is not bounded here (that is the idle timeout's
/// job). A client that trickles a line a byte at a time is closed with
/// [`CloseReason::RequestTimeout`](crate::CloseReason::RequestTimeout).
///
/// ```
/// use core::time::Duration;
/// use tcpool_core::framing::{LineTimeout, Lines};
/// use tcpool_core::{Conn, Handler};
///
/// struct Commands(LineTimeout);
/// impl Handler for Commands {
///     type State = ();
///     fn on_open(&mut self, conn: &mut Conn<'_>) {
///         self.0.opened(conn);
///     }
///     fn on_data(&mut self, conn: &mut Conn<'_>, _: &mut (), data: &[u8]) -> usize {
///         let mut lines = Lines::new(data, 128);
///         let mut complete = 0;
///         for line in lines.by_ref().flatten() {
///             complete += 1;
///             let _ = conn.write_all(line);
///         }
///         let used = lines.consumed();
///         self.0.parsed(conn, complete > 0, data.len() - used);
///         used
///     }
/// }
/// let _ = Commands(LineTimeout::new(Duration::from_secs(1)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTimeout {
    timeout: Duration,
}

impl LineTimeout {
    /// Lines must complete within `timeout`.
    pub const fn new(timeout: Duration) -> Self {
        LineTimeout { timeout }
    }

    /// The time a line has.
    pub const fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Call from [`Handler::on_open`](crate::Handler::on_open): the first
    /// line must be complete within the timeout of the accept.
    pub fn opened(&self, conn: &mut Conn<'_>) {
        conn.set_deadline(conn.now() + self.timeout);
    }

    /// Call from [`Handler::on_data`](crate::Handler::on_data) after
    /// parsing: `completed` says whether at least one line was complete,
    /// `left` how many bytes remain unconsumed (the start of the next
    /// line). A completed line clears the deadline; the first bytes of a new
    /// line start a fresh one.
    pub fn parsed(&self, conn: &mut Conn<'_>, completed: bool, left: usize) {
        if completed {
            conn.clear_deadline();
        }
        if left > 0 && conn.deadline().is_none() {
            conn.set_deadline(conn.now() + self.timeout);
        }
    }
}

/// Finds the first complete line in `buf`.
///
/// Returns the line without its `\n` or `\r\n` terminator and the number of
/// bytes it occupies including the terminator, `Ok(None)` if more input is
/// needed, or [`FrameError::LineTooLong`] as soon as the input proves the
/// line is longer than `max` bytes.
///
/// ```
/// use tcpool_core::framing::next_line;
/// use tcpool_core::FrameError;
///
/// assert_eq!(next_line(b"ab\r\ncd", 8), Ok(Some((&b"ab"[..], 4))));
/// assert_eq!(next_line(b"abc", 8), Ok(None));
/// assert_eq!(next_line(b"abcdefghij", 8), Err(FrameError::LineTooLong { max: 8 }));
/// ```
pub fn next_line(buf: &[u8], max: usize) -> Result<Option<(&[u8], usize)>, FrameError> {
    let window = &buf[..buf.len().min(max.saturating_add(2))];
    match window.iter().position(|&b| b == b'\n') {
        Some(nl) => {
            let line = &buf[..nl];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.len() > max {
                Err(FrameError::LineTooLong { max })
            } else {
                Ok(Some((line, nl + 1)))
            }
        }
        None => {
            // Without a newline, `max` bytes of text and a trailing `\r`
            // may still be a legal line; anything longer cannot be.
            let can_still_fit = buf.len() <= max
                || (buf.len() == max.saturating_add(1) && buf.last() == Some(&b'\r'));
            if can_still_fit {
                Ok(None)
            } else {
                Err(FrameError::LineTooLong { max })
            }
        }
    }
}

/// An iterator over the complete lines at the front of a buffer.
///
/// Yields each line (terminator stripped), stops at the first incomplete
/// line, and yields one `Err` and then stops if a line is too long.
/// [`consumed`](Lines::consumed) tells how many bytes the yielded lines
/// covered: return that from [`Handler::on_data`](crate::Handler::on_data).
#[derive(Debug, Clone)]
pub struct Lines<'a> {
    buf: &'a [u8],
    max: usize,
    consumed: usize,
    done: bool,
}

impl<'a> Lines<'a> {
    /// Lines of at most `max` bytes from `buf`.
    pub fn new(buf: &'a [u8], max: usize) -> Self {
        Lines {
            buf,
            max,
            consumed: 0,
            done: false,
        }
    }

    /// Bytes covered by the lines yielded so far.
    pub fn consumed(&self) -> usize {
        self.consumed
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = Result<&'a [u8], FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match next_line(&self.buf[self.consumed..], self.max) {
            Ok(Some((line, used))) => {
                self.consumed += used;
                Some(Ok(line))
            }
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// The length header of a length-prefixed frame: an unsigned big-endian
/// integer giving the payload length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Prefix {
    /// One byte.
    U8,
    /// Two bytes, big-endian.
    U16Be,
    /// Four bytes, big-endian.
    U32Be,
}

impl Prefix {
    /// Size of the header in bytes.
    pub const fn len(self) -> usize {
        match self {
            Prefix::U8 => 1,
            Prefix::U16Be => 2,
            Prefix::U32Be => 4,
        }
    }

    /// Always false: a header has at least one byte.
    pub const fn is_empty(self) -> bool {
        false
    }

    /// The largest payload length the header can express.
    pub const fn max_payload(self) -> usize {
        match self {
            Prefix::U8 => u8::MAX as usize,
            Prefix::U16Be => u16::MAX as usize,
            Prefix::U32Be => {
                if usize::BITS > 32 {
                    u32::MAX as usize
                } else {
                    usize::MAX
                }
            }
        }
    }

    fn decode(self, header: &[u8]) -> usize {
        header[..self.len()].iter().fold(0usize, |acc, &b| {
            acc.saturating_mul(256).saturating_add(b as usize)
        })
    }

    /// Writes the header for a payload of `len` bytes into `out`, returning
    /// the header bytes used, or `None` if `len` does not fit the header.
    pub fn encode(self, len: usize, out: &mut [u8; 4]) -> Option<usize> {
        if len > self.max_payload() {
            return None;
        }
        let bytes = (len as u64).to_be_bytes();
        let n = self.len();
        out[..n].copy_from_slice(&bytes[8 - n..]);
        Some(n)
    }
}

/// Finds the first complete length-prefixed frame in `buf`.
///
/// Returns the payload and the bytes the frame occupies (header included),
/// `Ok(None)` if more input is needed, or [`FrameError::FrameTooLong`] as
/// soon as the header announces more than `max` bytes.
///
/// ```
/// use tcpool_core::framing::{next_frame, Prefix};
///
/// assert_eq!(next_frame(&[0, 3, b'a', b'b', b'c', 0], Prefix::U16Be, 64), Ok(Some((&b"abc"[..], 5))));
/// assert_eq!(next_frame(&[0, 3, b'a'], Prefix::U16Be, 64), Ok(None));
/// assert!(next_frame(&[1, 0], Prefix::U16Be, 64).is_err());
/// ```
pub fn next_frame(
    buf: &[u8],
    prefix: Prefix,
    max: usize,
) -> Result<Option<(&[u8], usize)>, FrameError> {
    let h = prefix.len();
    if buf.len() < h {
        return Ok(None);
    }
    let len = prefix.decode(buf);
    if len > max {
        return Err(FrameError::FrameTooLong { len, max });
    }
    match h.checked_add(len) {
        Some(total) if buf.len() >= total => Ok(Some((&buf[h..total], total))),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_of_exactly_max_bytes_is_accepted_with_crlf() {
        assert_eq!(next_line(b"abcd\r\n", 4), Ok(Some((&b"abcd"[..], 6))));
        assert_eq!(next_line(b"abcd\r", 4), Ok(None));
        assert_eq!(next_line(b"abcd", 4), Ok(None));
        assert_eq!(
            next_line(b"abcde", 4),
            Err(FrameError::LineTooLong { max: 4 })
        );
        assert_eq!(
            next_line(b"abcde\n", 4),
            Err(FrameError::LineTooLong { max: 4 })
        );
    }

    #[test]
    fn empty_lines_are_lines() {
        let lines: heapless::Vec<_, 4> = Lines::new(b"\n\r\nx\n", 4).collect();
        assert_eq!(
            lines.as_slice(),
            &[Ok(&b""[..]), Ok(&b""[..]), Ok(&b"x"[..])]
        );
    }

    #[test]
    fn lines_split_at_every_byte_boundary_give_the_same_lines() {
        let input = b"alpha\r\nbeta\n\ngamma-delta\n";
        for split in 0..=input.len() {
            // Feed the input in two parts, keeping unconsumed bytes, as a slot does.
            let mut pending: heapless::Vec<u8, 64> = heapless::Vec::new();
            let mut seen: heapless::Vec<heapless::Vec<u8, 16>, 8> = heapless::Vec::new();
            for part in [&input[..split], &input[split..]] {
                pending.extend_from_slice(part).unwrap();
                let mut lines = Lines::new(&pending, 16);
                for line in lines.by_ref() {
                    seen.push(heapless::Vec::from_slice(line.unwrap()).unwrap())
                        .unwrap();
                }
                let used = lines.consumed();
                let rest: heapless::Vec<u8, 64> =
                    heapless::Vec::from_slice(&pending[used..]).unwrap();
                pending = rest;
            }
            let want: [&[u8]; 4] = [b"alpha", b"beta", b"", b"gamma-delta"];
            assert_eq!(seen.len(), 4, "split at {split}");
            for (got, want) in seen.iter().zip(want) {
                assert_eq!(got.as_slice(), want, "split at {split}");
            }
            assert!(pending.is_empty());
        }
    }

    #[test]
    fn frames_round_trip_through_encode_for_every_prefix() {
        for prefix in [Prefix::U8, Prefix::U16Be, Prefix::U32Be] {
            let mut header = [0u8; 4];
            let n = prefix.encode(5, &mut header).unwrap();
            let mut frame: heapless::Vec<u8, 16> = heapless::Vec::from_slice(&header[..n]).unwrap();
            frame.extend_from_slice(b"hello").unwrap();
            assert_eq!(
                next_frame(&frame, prefix, 5),
                Ok(Some((&b"hello"[..], n + 5)))
            );
            for cut in 0..frame.len() {
                assert_eq!(
                    next_frame(&frame[..cut], prefix, 5),
                    Ok(None),
                    "{prefix:?} cut {cut}"
                );
            }
        }
        assert_eq!(Prefix::U8.encode(256, &mut [0; 4]), None);
    }

    #[test]
    fn oversized_frame_is_reported_from_the_header_alone() {
        assert_eq!(
            next_frame(&[0, 0, 1, 0], Prefix::U32Be, 255),
            Err(FrameError::FrameTooLong { len: 256, max: 255 })
        );
    }
}
