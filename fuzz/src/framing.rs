//! The framing helpers under any input and any split.
//!
//! One input is a limit, a length prefix, a set of split points and the
//! bytes. Checked for lines ([`next_line`], [`Lines`]) and for
//! length-prefixed frames ([`next_frame`], [`Prefix`]):
//!
//! * each answer is the one a plain reference reading of the rule gives
//!   (the rule: a line is the bytes before a `\n`, less one trailing `\r`,
//!   at most `max` of them; a frame is a big-endian header and as many
//!   bytes as it announces, at most `max`), so an error comes only when
//!   the rule is really broken, and as soon as the input proves it;
//! * what a frame covers never exceeds the input, and the payload is the
//!   very bytes of the input;
//! * the iterator yields what repeated calls of the function yield, and
//!   nothing after an error;
//! * feeding the bytes in pieces, keeping what was not consumed as a slot
//!   does, finds the same frames, the same error and leaves the same bytes
//!   as feeding them at once;
//! * payloads encoded with [`Prefix::encode`] decode to themselves.

use arbitrary::{Arbitrary, Result, Unstructured};
use tcpool_core::FrameError;
use tcpool_core::framing::{Lines, Prefix, next_frame, next_line};

/// A limit: small ones exercise the edges, huge ones the overflow paths.
fn limit(u: &mut Unstructured<'_>) -> Result<usize> {
    Ok(match u.int_in_range(0u8..=9)? {
        0 => usize::MAX - usize::from(u.int_in_range(0u8..=3)?),
        1 => usize::from(u16::arbitrary(u)?),
        2 => u32::MAX as usize,
        _ => usize::from(u.int_in_range(0u8..=40)?),
    })
}

/// One decoded input.
#[derive(Debug)]
struct Input<'a> {
    line_max: usize,
    frame_max: usize,
    prefix: Prefix,
    splits: Vec<usize>,
    data: &'a [u8],
}

fn input(mut u: Unstructured<'_>) -> Result<Input<'_>> {
    let line_max = limit(&mut u)?;
    let frame_max = limit(&mut u)?;
    let prefix = *u.choose(&[Prefix::U8, Prefix::U16Be, Prefix::U32Be])?;
    let n = u.int_in_range(0u8..=8)?;
    let mut splits = Vec::new();
    for _ in 0..n {
        splits.push(usize::from(u16::arbitrary(&mut u)?));
    }
    let data = u.take_rest();
    splits.retain(|&s| s <= data.len());
    splits.sort_unstable();
    splits.dedup();
    Ok(Input {
        line_max,
        frame_max,
        prefix,
        splits,
        data,
    })
}

/// Runs one input through every check; panics on a broken invariant.
pub fn run(data: &[u8]) {
    let Ok(input) = input(Unstructured::new(data)) else {
        return;
    };
    check_lines(&input);
    check_frames(&input);
    check_round_trip(&input);
}

// ------------------------------------------------------------------ lines

type Found = Result<Option<(Vec<u8>, usize)>, FrameError>;

/// The line rule read plainly over the whole buffer.
fn reference_line(buf: &[u8], max: usize) -> Found {
    match buf.iter().position(|&b| b == b'\n') {
        Some(nl) => {
            let line = &buf[..nl];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.len() > max {
                Err(FrameError::LineTooLong { max })
            } else {
                Ok(Some((line.to_vec(), nl + 1)))
            }
        }
        // No newline yet: an error only if no ending could make it legal.
        None => {
            let legal_later = buf.len() <= max
                || (buf.len() == max.saturating_add(1) && buf.last() == Some(&b'\r'));
            if legal_later {
                Ok(None)
            } else {
                Err(FrameError::LineTooLong { max })
            }
        }
    }
}

fn owned(found: Result<Option<(&[u8], usize)>, FrameError>) -> Found {
    found.map(|o| o.map(|(l, n)| (l.to_vec(), n)))
}

/// What a slot sees when `data` arrives in pieces cut at `splits`: the
/// frames found, the error if one was found (nothing is read after it),
/// and the bytes left unconsumed if there was none.
type Streamed = (Vec<Vec<u8>>, Option<FrameError>, Vec<u8>);

fn streamed(
    data: &[u8],
    splits: &[usize],
    mut parse: impl FnMut(&[u8]) -> (Vec<Vec<u8>>, usize, Option<FrameError>),
) -> Streamed {
    let mut pending = Vec::new();
    let mut frames = Vec::new();
    let mut from = 0;
    for &to in splits.iter().chain(core::iter::once(&data.len())) {
        pending.extend_from_slice(&data[from..to]);
        from = to;
        let (found, used, error) = parse(&pending);
        assert!(
            used <= pending.len(),
            "consumed {used} of {}",
            pending.len()
        );
        frames.extend(found);
        pending.drain(..used);
        if error.is_some() {
            // A slot stops reading here: what is left is not compared
            // (a split run found the error with less of it).
            return (frames, error, Vec::new());
        }
    }
    (frames, None, pending)
}

fn parse_lines(buf: &[u8], max: usize) -> (Vec<Vec<u8>>, usize, Option<FrameError>) {
    let mut lines = Lines::new(buf, max);
    let mut found = Vec::new();
    let mut error = None;
    // The iterator agrees with repeated calls of `next_line`.
    let mut at = 0;
    for item in lines.by_ref() {
        let expected = next_line(&buf[at..], max);
        match item {
            Ok(line) => {
                let Ok(Some((l, n))) = expected else {
                    panic!("Lines yielded {line:?}, next_line said {expected:?}");
                };
                assert_eq!(line, l);
                at += n;
                found.push(line.to_vec());
            }
            Err(e) => {
                assert_eq!(expected, Err(e));
                error = Some(e);
                break;
            }
        }
    }
    if error.is_none() {
        assert_eq!(next_line(&buf[at..], max), Ok(None), "Lines stopped early");
    }
    assert_eq!(lines.next(), None, "Lines yields nothing after it stopped");
    assert_eq!(lines.consumed(), at, "consumed covers the lines yielded");
    (found, lines.consumed(), error)
}

fn check_lines(input: &Input<'_>) {
    let (buf, max) = (input.data, input.line_max);
    let got = owned(next_line(buf, max));
    assert_eq!(got, reference_line(buf, max), "next_line({buf:?}, {max})");
    match &got {
        Ok(Some((line, used))) => {
            assert!(*used <= buf.len());
            assert_eq!(buf[used - 1], b'\n');
            assert!(buf[..*used].starts_with(line));
        }
        // Waiting for more: a newline now would complete a legal line.
        Ok(None) => {
            let mut more = buf.to_vec();
            more.push(b'\n');
            assert!(
                matches!(next_line(&more, max), Ok(Some((_, n))) if n == more.len()),
                "{buf:?} waits for more, yet a newline does not complete it"
            );
        }
        Err(_) => {}
    }
    // Any split finds what one piece finds.
    let whole = streamed(buf, &[], |b| parse_lines(b, max));
    let split = streamed(buf, &input.splits, |b| parse_lines(b, max));
    assert_eq!(whole, split, "lines of {buf:?} split at {:?}", input.splits);
    // Every byte-by-byte split too, for short inputs.
    if buf.len() <= 64 {
        let every: Vec<usize> = (1..buf.len()).collect();
        let bytewise = streamed(buf, &every, |b| parse_lines(b, max));
        assert_eq!(whole, bytewise, "lines of {buf:?} fed a byte at a time");
    }
}

// ----------------------------------------------------------------- frames

/// The frame rule read plainly.
fn reference_frame(buf: &[u8], prefix: Prefix, max: usize) -> Found {
    let h = prefix.len();
    if buf.len() < h {
        return Ok(None);
    }
    let len = buf[..h]
        .iter()
        .fold(0u128, |acc, &b| acc * 256 + u128::from(b));
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    if len > max {
        return Err(FrameError::FrameTooLong { len, max });
    }
    if (buf.len() - h) as u128 >= len as u128 {
        Ok(Some((buf[h..h + len].to_vec(), h + len)))
    } else {
        Ok(None)
    }
}

fn parse_frames(
    buf: &[u8],
    prefix: Prefix,
    max: usize,
) -> (Vec<Vec<u8>>, usize, Option<FrameError>) {
    let mut found = Vec::new();
    let mut at = 0;
    loop {
        match next_frame(&buf[at..], prefix, max) {
            Ok(Some((payload, used))) => {
                assert!(used > 0 && at + used <= buf.len());
                found.push(payload.to_vec());
                at += used;
            }
            Ok(None) => return (found, at, None),
            Err(e) => return (found, at, Some(e)),
        }
    }
}

fn check_frames(input: &Input<'_>) {
    let (buf, prefix, max) = (input.data, input.prefix, input.frame_max);
    let got = owned(next_frame(buf, prefix, max));
    assert_eq!(
        got,
        reference_frame(buf, prefix, max),
        "next_frame({buf:?}, {prefix:?}, {max})"
    );
    if let Ok(Some((payload, used))) = &got {
        assert!(*used <= buf.len());
        assert_eq!(&buf[used - payload.len()..*used], &payload[..]);
    }
    let whole = streamed(buf, &[], |b| parse_frames(b, prefix, max));
    let split = streamed(buf, &input.splits, |b| parse_frames(b, prefix, max));
    assert_eq!(
        whole, split,
        "frames of {buf:?} split at {:?}",
        input.splits
    );
}

/// The pieces of the data between split points, encoded as frames, decode
/// to themselves under any split.
fn check_round_trip(input: &Input<'_>) {
    let (data, prefix) = (input.data, input.prefix);
    let mut payloads = Vec::new();
    let mut from = 0;
    for &to in input.splits.iter().chain(core::iter::once(&data.len())) {
        payloads.push(&data[from..to]);
        from = to;
    }
    let mut stream = Vec::new();
    let mut cuts = Vec::new();
    for p in &payloads {
        let mut header = [0u8; 4];
        match prefix.encode(p.len(), &mut header) {
            Some(n) => {
                assert_eq!(n, prefix.len());
                stream.extend_from_slice(&header[..n]);
            }
            None => {
                assert!(
                    p.len() > prefix.max_payload(),
                    "encode refused {} bytes",
                    p.len()
                );
                return;
            }
        }
        // Cut inside the header too.
        cuts.push(stream.len() - 1);
        stream.extend_from_slice(p);
        cuts.push(stream.len());
    }
    cuts.retain(|&c| c <= stream.len());
    cuts.dedup();
    let max = payloads.iter().map(|p| p.len()).max().unwrap_or(0);
    let (frames, error, left) = streamed(&stream, &cuts, |b| parse_frames(b, prefix, max));
    assert_eq!(error, None);
    assert!(left.is_empty(), "{} bytes left over", left.len());
    assert_eq!(frames, payloads, "round trip through {prefix:?}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_and_helpers_agree_on_the_edges() {
        for max in [0, 1, 4, usize::MAX] {
            for buf in [
                &b""[..],
                b"\n",
                b"\r\n",
                b"abcd\r",
                b"abcd\r\n",
                b"abcde",
                b"abcd\rx",
                b"\r\r\n",
            ] {
                assert_eq!(owned(next_line(buf, max)), reference_line(buf, max));
            }
        }
        let huge = [0xff, 0xff, 0xff, 0xff, 1];
        assert_eq!(
            owned(next_frame(&huge, Prefix::U32Be, usize::MAX)),
            reference_frame(&huge, Prefix::U32Be, usize::MAX)
        );
    }

    #[test]
    fn a_rule_break_is_caught() {
        // The reference is not vacuous: it disagrees with a wrong answer.
        assert_ne!(reference_line(b"abcde", 4), Ok(None));
        assert_ne!(reference_frame(&[0, 5, 1, 2], Prefix::U16Be, 4), Ok(None));
    }
}
