//! The throughput-vs-clients plot: echo throughput of each peer at 1, 2, 4,
//! 8 and 16 clients, measured here (not by criterion: five client counts
//! times three peers would double the run) the way the ratio summary is,
//! interleaved (see [`report`](super::report)), and drawn as a PNG.

use std::path::Path;

use super::clients::{self, CHUNK};
use super::png::{Canvas, Rgb};
use super::report::{self, Work};
use super::servers::Peer;

/// The client counts on the x axis.
pub const CLIENT_COUNTS: [usize; 5] = [1, 2, 4, 8, 16];

/// Rounds (one batch per peer each) per point.
const ROUNDS: usize = 9;

/// One peer's line: its name, colour, marker and points (clients, MB/s).
struct Series {
    name: &'static str,
    colour: Rgb,
    marker: Marker,
    points: Vec<(usize, f64)>,
}

/// The shape drawn at each point, so lines differ without colour too.
#[derive(Copy, Clone)]
enum Marker {
    Square,
    Disc,
    Diamond,
}

/// Measures every peer at every client count, prints each point as a
/// `summary` line, and writes the plot to `path` (creating its directory).
pub fn sweep_and_draw(path: &Path) {
    println!("\nthroughput vs clients, for the plot ({path:?}):");
    let style = |peer: Peer| match peer {
        Peer::TcpoolStd => ([31, 119, 180], Marker::Square),
        Peer::TokioCurrentThread => ([230, 110, 0], Marker::Disc),
        Peer::Threads => ([44, 150, 44], Marker::Diamond),
    };
    let mut series: Vec<Series> = Peer::ALL
        .iter()
        .map(|&peer| Series {
            name: peer.name(),
            colour: style(peer).0,
            marker: style(peer).1,
            points: Vec::new(),
        })
        .collect();
    for n in CLIENT_COUNTS {
        let work = Work::Bytes(CHUNK as u64);
        let results = report::interleaved(work, ROUNDS, |addr| clients::echo_chunks(addr, n));
        report::print(&format!("plot/echo_throughput/{n}_clients"), work, &results);
        for (s, m) in series.iter_mut().zip(&results) {
            s.points.push((n, m.median));
        }
    }
    let png = draw(&series, &machine());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {dir:?}: {e}"));
    }
    std::fs::write(path, png).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
    println!("plot written to {path:?}");
}

/// The CPU model and the number of CPUs, for the plot's footer.
fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cpus} CPUs")
}

/// Today's date (UTC) as `YYYY-MM-DD`, from the system clock.
fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Days since 1970-01-01 to a civil date (the proleptic Gregorian
    // calendar, in 400-year eras of 146,097 days starting on 0000-03-01).
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// A round number of MB/s for the top of the y axis and the step between
/// grid lines, so that `max` fits with 4 to 10 steps.
fn y_scale(max: f64) -> (f64, f64) {
    let mut step = 1.0;
    for candidate in [
        10.0, 20.0, 25.0, 50.0, 100.0, 200.0, 250.0, 500.0, 1000.0, 2000.0, 2500.0, 5000.0,
    ] {
        step = candidate;
        if max / candidate <= 8.0 {
            break;
        }
    }
    let top = ((max * 1.08) / step).ceil().max(1.0) * step;
    (top, step)
}

const BLACK: Rgb = [0, 0, 0];
const GREY: Rgb = [90, 90, 90];
const GRID: Rgb = [222, 222, 222];
const WHITE: Rgb = [255, 255, 255];

/// Draws the series as a line chart: clients on a log-2 x axis, MB/s on a
/// linear y axis from 0.
fn draw(series: &[Series], machine: &str) -> Vec<u8> {
    const W: i64 = 1000;
    const H: i64 = 680;
    const LEFT: i64 = 110;
    const RIGHT: i64 = 960;
    const TOP: i64 = 100;
    const BOTTOM: i64 = 540;
    let mut c = Canvas::new(W as usize, H as usize, WHITE);

    let title = "Echo throughput vs clients: tcpool-std and its peers";
    c.text((W - Canvas::text_width(title, 3)) / 2, 16, title, 3, BLACK);

    // Legend, one row under the title.
    let legend_width: i64 = series
        .iter()
        .map(|s| 60 + Canvas::text_width(s.name, 2) + 40)
        .sum();
    let mut x = (W - legend_width) / 2;
    for s in series {
        c.line((x, 62), (x + 44, 62), 3, s.colour);
        marker(&mut c, s.marker, x + 22, 62, s.colour);
        c.text(x + 56, 55, s.name, 2, BLACK);
        x += 60 + Canvas::text_width(s.name, 2) + 40;
    }

    let max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let (top, step) = y_scale(max);
    let y_of = |v: f64| BOTTOM - ((v / top) * (BOTTOM - TOP) as f64).round() as i64;
    let last = CLIENT_COUNTS[CLIENT_COUNTS.len() - 1] as f64;
    let x_of = |n: usize| {
        let f = (n as f64).log2() / last.log2();
        LEFT + 30 + (f * (RIGHT - LEFT - 60) as f64).round() as i64
    };

    // Grid and y tick labels.
    let mut v = 0.0;
    while v <= top + step / 2.0 {
        let y = y_of(v);
        c.line((LEFT, y), (RIGHT, y), 1, GRID);
        let label = format!("{v:.0}");
        c.text(
            LEFT - 12 - Canvas::text_width(&label, 2),
            y - 7,
            &label,
            2,
            GREY,
        );
        v += step;
    }
    for &n in &CLIENT_COUNTS {
        let x = x_of(n);
        c.line((x, TOP), (x, BOTTOM), 1, GRID);
        let label = n.to_string();
        c.text(
            x - Canvas::text_width(&label, 2) / 2,
            BOTTOM + 12,
            &label,
            2,
            GREY,
        );
    }
    // Axes.
    c.line((LEFT, TOP), (LEFT, BOTTOM), 2, BLACK);
    c.line((LEFT, BOTTOM), (RIGHT, BOTTOM), 2, BLACK);
    c.text(LEFT - 90, TOP - 24, "MB/s", 2, BLACK);
    let x_label = "clients (each writes a 64 KiB chunk and reads it back)";
    c.text(
        (LEFT + RIGHT - Canvas::text_width(x_label, 2)) / 2,
        BOTTOM + 42,
        x_label,
        2,
        BLACK,
    );

    // The series.
    for s in series {
        for pair in s.points.windows(2) {
            let a = (x_of(pair[0].0), y_of(pair[0].1));
            let b = (x_of(pair[1].0), y_of(pair[1].1));
            c.line(a, b, 3, s.colour);
        }
        for &(n, v) in &s.points {
            marker(&mut c, s.marker, x_of(n), y_of(v), s.colour);
        }
    }

    let footer = format!("{}; 127.0.0.1, one process; {machine}", today());
    c.text(
        (W - Canvas::text_width(&footer, 2)) / 2,
        H - 56,
        &footer,
        2,
        GREY,
    );
    let command = "TCPOOL_BENCH_PLOT=docs/throughput-vs-clients.png cargo bench --bench std_peers";
    c.text(
        (W - Canvas::text_width(command, 2)) / 2,
        H - 30,
        command,
        2,
        GREY,
    );
    c.to_png()
}

/// Draws a point's marker.
fn marker(c: &mut Canvas, marker: Marker, x: i64, y: i64, colour: Rgb) {
    match marker {
        Marker::Square => c.fill_rect(x - 6, y - 6, x + 6, y + 6, colour),
        Marker::Disc => c.disc(x, y, 7, colour),
        Marker::Diamond => c.diamond(x, y, 8, colour),
    }
}
