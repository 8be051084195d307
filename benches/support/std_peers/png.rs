//! A tiny raster canvas and PNG encoder, for the throughput plot without
//! system libraries or extra dependencies: lines, rectangles, markers, text
//! in a built-in 5×8 bitmap font, and a PNG writer (RGB, zlib with fixed
//! Huffman codes and a simple LZ77 match finder; plots are mostly flat
//! colour, so that compresses well).

/// An RGB colour.
pub type Rgb = [u8; 3];

/// An RGB image in memory, origin at the top left.
pub struct Canvas {
    width: usize,
    height: usize,
    pixels: Vec<Rgb>,
}

impl Canvas {
    /// A canvas of `width` × `height` pixels filled with `background`.
    pub fn new(width: usize, height: usize, background: Rgb) -> Canvas {
        Canvas {
            width,
            height,
            pixels: vec![background; width * height],
        }
    }

    /// Sets one pixel; coordinates outside the canvas are ignored.
    pub fn set(&mut self, x: i64, y: i64, colour: Rgb) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            self.pixels[y as usize * self.width + x as usize] = colour;
        }
    }

    /// Fills the rectangle `[x0, x1] × [y0, y1]` (inclusive).
    pub fn fill_rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, colour: Rgb) {
        for y in y0.min(y1)..=y0.max(y1) {
            for x in x0.min(x1)..=x0.max(x1) {
                self.set(x, y, colour);
            }
        }
    }

    /// A filled disc of radius `r` centred on `(cx, cy)`.
    pub fn disc(&mut self, cx: i64, cy: i64, r: i64, colour: Rgb) {
        for y in -r..=r {
            for x in -r..=r {
                if x * x + y * y <= r * r + r {
                    self.set(cx + x, cy + y, colour);
                }
            }
        }
    }

    /// A filled diamond (a square on its corner) of half-diagonal `r`.
    pub fn diamond(&mut self, cx: i64, cy: i64, r: i64, colour: Rgb) {
        for y in -r..=r {
            let w = r - y.abs();
            for x in -w..=w {
                self.set(cx + x, cy + y, colour);
            }
        }
    }

    /// A line `width` pixels thick from `(x0, y0)` to `(x1, y1)`.
    pub fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), width: i64, colour: Rgb) {
        let steps = (x1 - x0).abs().max((y1 - y0).abs()).max(1);
        let r = (width - 1) / 2;
        for i in 0..=steps {
            let x = x0 + (x1 - x0) * i / steps;
            let y = y0 + (y1 - y0) * i / steps;
            if r == 0 {
                self.set(x, y, colour);
            } else {
                self.disc(x, y, r, colour);
            }
        }
    }

    /// Writes `text` with its top-left corner at `(x, y)`, each font pixel
    /// drawn as a `scale` × `scale` square. Characters without a glyph are
    /// drawn as `?`.
    pub fn text(&mut self, x: i64, y: i64, text: &str, scale: i64, colour: Rgb) {
        for (i, c) in text.chars().enumerate() {
            let rows = glyph(c);
            let left = x + i as i64 * ADVANCE * scale;
            for (row, bits) in rows.iter().enumerate() {
                for col in 0..5 {
                    if bits & (0x10 >> col) != 0 {
                        let px = left + col * scale;
                        let py = y + row as i64 * scale;
                        self.fill_rect(px, py, px + scale - 1, py + scale - 1, colour);
                    }
                }
            }
        }
    }

    /// The width in pixels of `text` at `scale`.
    pub fn text_width(text: &str, scale: i64) -> i64 {
        (text.chars().count() as i64 * ADVANCE - 1).max(0) * scale
    }

    /// The image as a PNG file (8-bit RGB, no interlacing).
    pub fn to_png(&self) -> Vec<u8> {
        let stride = 1 + 3 * self.width;
        let mut raw = Vec::with_capacity(stride * self.height);
        for row in self.pixels.chunks(self.width) {
            raw.push(0); // filter: none
            for px in row {
                raw.extend_from_slice(px);
            }
        }
        let mut ihdr = Vec::with_capacity(13);
        ihdr.extend_from_slice(&(self.width as u32).to_be_bytes());
        ihdr.extend_from_slice(&(self.height as u32).to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // depth 8, RGB, deflate, filter 0, no interlace
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        chunk(&mut png, b"IHDR", &ihdr);
        chunk(&mut png, b"IDAT", &zlib(&raw, stride));
        chunk(&mut png, b"IEND", &[]);
        png
    }
}

/// Horizontal distance from one character to the next, in font pixels.
const ADVANCE: i64 = 6;

/// The rows of `c`'s glyph (bit 4 is the leftmost pixel).
fn glyph(c: char) -> [u8; 8] {
    FONT.iter()
        .find(|(g, _)| *g == c)
        .or_else(|| FONT.iter().find(|(g, _)| *g == '?'))
        .map(|(_, rows)| *rows)
        .unwrap_or([0; 8])
}

/// A 5×8 bitmap font (rows 0 to 6: capital height; row 7: descenders),
/// printable ASCII apart from a few symbols the plot does not use.
const FONT: &[(char, [u8; 8])] = &[
    (' ', [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]),
    ('!', [0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04, 0x00]),
    ('"', [0x0a, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]),
    ('#', [0x0a, 0x0a, 0x1f, 0x0a, 0x1f, 0x0a, 0x0a, 0x00]),
    ('%', [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03, 0x00]),
    ('\'', [0x04, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]),
    ('(', [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02, 0x00]),
    (')', [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08, 0x00]),
    ('*', [0x00, 0x04, 0x15, 0x0e, 0x15, 0x04, 0x00, 0x00]),
    ('+', [0x00, 0x04, 0x04, 0x1f, 0x04, 0x04, 0x00, 0x00]),
    (',', [0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x04, 0x08]),
    ('-', [0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00, 0x00]),
    ('.', [0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c, 0x00]),
    ('/', [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00, 0x00]),
    ('0', [0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e, 0x00]),
    ('1', [0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e, 0x00]),
    ('2', [0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f, 0x00]),
    ('3', [0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e, 0x00]),
    ('4', [0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02, 0x00]),
    ('5', [0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e, 0x00]),
    ('6', [0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e, 0x00]),
    ('7', [0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08, 0x00]),
    ('8', [0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e, 0x00]),
    ('9', [0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c, 0x00]),
    (':', [0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00, 0x00]),
    (';', [0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x04, 0x08, 0x00]),
    ('<', [0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02, 0x00]),
    ('=', [0x00, 0x00, 0x1f, 0x00, 0x1f, 0x00, 0x00, 0x00]),
    ('>', [0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08, 0x00]),
    ('?', [0x0e, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04, 0x00]),
    ('@', [0x0e, 0x11, 0x01, 0x0d, 0x15, 0x15, 0x0e, 0x00]),
    ('A', [0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11, 0x00]),
    ('B', [0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e, 0x00]),
    ('C', [0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e, 0x00]),
    ('D', [0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c, 0x00]),
    ('E', [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f, 0x00]),
    ('F', [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10, 0x00]),
    ('G', [0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f, 0x00]),
    ('H', [0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11, 0x00]),
    ('I', [0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e, 0x00]),
    ('J', [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c, 0x00]),
    ('K', [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11, 0x00]),
    ('L', [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f, 0x00]),
    ('M', [0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11, 0x00]),
    ('N', [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11, 0x00]),
    ('O', [0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e, 0x00]),
    ('P', [0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10, 0x00]),
    ('Q', [0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d, 0x00]),
    ('R', [0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11, 0x00]),
    ('S', [0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e, 0x00]),
    ('T', [0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00]),
    ('U', [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e, 0x00]),
    ('V', [0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04, 0x00]),
    ('W', [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a, 0x00]),
    ('X', [0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11, 0x00]),
    ('Y', [0x11, 0x11, 0x11, 0x0a, 0x04, 0x04, 0x04, 0x00]),
    ('Z', [0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f, 0x00]),
    ('[', [0x0e, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0e, 0x00]),
    (']', [0x0e, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0e, 0x00]),
    ('_', [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f]),
    ('a', [0x00, 0x00, 0x0e, 0x01, 0x0f, 0x11, 0x0f, 0x00]),
    ('b', [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1e, 0x00]),
    ('c', [0x00, 0x00, 0x0e, 0x10, 0x10, 0x11, 0x0e, 0x00]),
    ('d', [0x01, 0x01, 0x0d, 0x13, 0x11, 0x11, 0x0f, 0x00]),
    ('e', [0x00, 0x00, 0x0e, 0x11, 0x1f, 0x10, 0x0e, 0x00]),
    ('f', [0x06, 0x09, 0x08, 0x1c, 0x08, 0x08, 0x08, 0x00]),
    ('g', [0x00, 0x00, 0x0f, 0x11, 0x11, 0x0f, 0x01, 0x0e]),
    ('h', [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00]),
    ('i', [0x04, 0x00, 0x0c, 0x04, 0x04, 0x04, 0x0e, 0x00]),
    ('j', [0x02, 0x00, 0x06, 0x02, 0x02, 0x02, 0x12, 0x0c]),
    ('k', [0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12, 0x00]),
    ('l', [0x0c, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e, 0x00]),
    ('m', [0x00, 0x00, 0x1a, 0x15, 0x15, 0x11, 0x11, 0x00]),
    ('n', [0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00]),
    ('o', [0x00, 0x00, 0x0e, 0x11, 0x11, 0x11, 0x0e, 0x00]),
    ('p', [0x00, 0x00, 0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10]),
    ('q', [0x00, 0x00, 0x0f, 0x11, 0x11, 0x0f, 0x01, 0x01]),
    ('r', [0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10, 0x00]),
    ('s', [0x00, 0x00, 0x0e, 0x10, 0x0e, 0x01, 0x1e, 0x00]),
    ('t', [0x08, 0x08, 0x1c, 0x08, 0x08, 0x09, 0x06, 0x00]),
    ('u', [0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0d, 0x00]),
    ('v', [0x00, 0x00, 0x11, 0x11, 0x11, 0x0a, 0x04, 0x00]),
    ('w', [0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0a, 0x00]),
    ('x', [0x00, 0x00, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x00]),
    ('y', [0x00, 0x00, 0x11, 0x11, 0x11, 0x0f, 0x01, 0x0e]),
    ('z', [0x00, 0x00, 0x1f, 0x02, 0x04, 0x08, 0x1f, 0x00]),
    ('|', [0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00]),
    ('~', [0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00, 0x00]),
];

/// Appends one PNG chunk: length, type, data, CRC of type and data.
fn chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    png.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = png.len();
    png.extend_from_slice(kind);
    png.extend_from_slice(data);
    let crc = crc32(&png[start..]);
    png.extend_from_slice(&crc.to_be_bytes());
}

/// CRC-32 (ISO-HDLC, as PNG uses), bit by bit: the plot is small.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Adler-32, the zlib stream's checksum.
fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &x in chunk {
            a += u32::from(x);
            b += a;
        }
        a %= 65521;
        b %= 65521;
    }
    (b << 16) | a
}

/// Bits packed least significant first, as deflate wants them.
struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    len: u32,
}

impl BitWriter {
    fn put(&mut self, value: u32, count: u32) {
        self.acc |= u64::from(value) << self.len;
        self.len += count;
        while self.len >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.len -= 8;
        }
    }

    /// A Huffman code, which deflate stores most significant bit first.
    fn put_code(&mut self, code: u32, count: u32) {
        let reversed = code.reverse_bits() >> (32 - count);
        self.put(reversed, count);
    }

    /// A literal/length symbol in deflate's fixed Huffman code.
    fn put_symbol(&mut self, symbol: u32) {
        match symbol {
            0..=143 => self.put_code(0x30 + symbol, 8),
            144..=255 => self.put_code(0x190 + symbol - 144, 9),
            256..=279 => self.put_code(symbol - 256, 7),
            _ => self.put_code(0xc0 + symbol - 280, 8),
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.len > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

const LENGTH_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LENGTH_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DISTANCE_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DISTANCE_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];

/// The longest match deflate can express, and the farthest.
const MAX_MATCH: usize = 258;
const WINDOW: usize = 32 * 1024;

/// `data` as a zlib stream: one fixed-Huffman deflate block. Matches are
/// looked for at the previous pixel (3 bytes back), the row above
/// (`stride` back) and the last place the next three bytes were seen.
fn zlib(data: &[u8], stride: usize) -> Vec<u8> {
    let mut bits = BitWriter {
        out: vec![0x78, 0x01],
        acc: 0,
        len: 0,
    };
    bits.put(1, 1); // final block
    bits.put(1, 2); // fixed Huffman codes
    let hash = |i: usize| {
        ((usize::from(data[i]) << 10) ^ (usize::from(data[i + 1]) << 5) ^ usize::from(data[i + 2]))
            & 0x7fff
    };
    let mut last_seen = vec![usize::MAX; 0x8000];
    let mut i = 0;
    while i < data.len() {
        let (mut best_len, mut best_dist) = (0, 0);
        if i + 3 <= data.len() {
            let h = hash(i);
            for from in [last_seen[h], i.wrapping_sub(3), i.wrapping_sub(stride)] {
                if from < i && i - from <= WINDOW {
                    let max = MAX_MATCH.min(data.len() - i);
                    let len = (0..max)
                        .take_while(|&k| data[from + k] == data[i + k])
                        .count();
                    if len > best_len {
                        (best_len, best_dist) = (len, i - from);
                    }
                }
            }
            last_seen[h] = i;
        }
        if best_len >= 3 {
            let code = LENGTH_BASE
                .iter()
                .rposition(|&b| usize::from(b) <= best_len)
                .unwrap_or(0);
            bits.put_symbol(257 + code as u32);
            bits.put(
                (best_len - usize::from(LENGTH_BASE[code])) as u32,
                u32::from(LENGTH_EXTRA[code]),
            );
            let code = DISTANCE_BASE
                .iter()
                .rposition(|&b| usize::from(b) <= best_dist)
                .unwrap_or(0);
            bits.put_code(code as u32, 5);
            bits.put(
                (best_dist - usize::from(DISTANCE_BASE[code])) as u32,
                u32::from(DISTANCE_EXTRA[code]),
            );
            for j in i + 1..(i + best_len).min(data.len().saturating_sub(2)) {
                last_seen[hash(j)] = j;
            }
            i += best_len;
        } else {
            bits.put_symbol(u32::from(data[i]));
            i += 1;
        }
    }
    bits.put_symbol(256); // end of block
    let mut out = bits.finish();
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}
