//! The throughput-vs-clients plot: echo throughput of each peer at 1, 2, 4,
//! 8 and 16 clients, measured here (not by criterion: five client counts
//! times three peers would double the run) the way the ratio summary is,
//! interleaved (see [`report`](super::report)), and drawn with plotters as
//! an SVG image.

use std::error::Error;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::clients::{self, CHUNK};
use super::report::{self, Work};
use super::servers::Peer;

/// The client counts on the x axis.
pub const CLIENT_COUNTS: [usize; 5] = [1, 2, 4, 8, 16];

/// Rounds (one batch per peer each) per point.
const ROUNDS: usize = 9;

/// One peer's line: its name, colour, marker and points (x, MB/s).
pub struct Series {
    /// The legend's text.
    pub name: &'static str,
    /// The line's colour.
    pub colour: RGBColor,
    /// The shape at each point.
    pub marker: Marker,
    /// The points: an x value of [`Chart::xs`], and MB/s.
    pub points: Vec<(usize, f64)>,
}

/// What a chart shows besides its lines.
pub struct Chart<'a> {
    /// The title.
    pub title: &'a str,
    /// The x axis' description.
    pub x_desc: &'a str,
    /// The x values, evenly spaced in this order.
    pub xs: &'a [usize],
    /// The command that draws it, for the footer.
    pub command: &'a str,
    /// Where the legend goes (where the lines are not).
    pub legend: SeriesLabelPosition,
}

/// The shape drawn at each point, so lines differ without colour too.
#[derive(Copy, Clone)]
pub enum Marker {
    Square,
    Disc,
    Diamond,
}

/// Where `TCPOOL_BENCH_PLOT` asks for the plot, if it does. Exits with an
/// error before any measuring if the name is not `*.svg` (the plot is an
/// SVG image).
pub fn requested() -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var_os("TCPOOL_BENCH_PLOT")?);
    if path.extension() != Some("svg".as_ref()) {
        eprintln!("error: TCPOOL_BENCH_PLOT={path:?}: the plot is an SVG image, name it *.svg");
        std::process::exit(2);
    }
    Some(path)
}

/// Measures every peer at every client count, prints each point as a
/// `summary` line, and writes the plot to `path`, an SVG image (creating
/// its directory).
pub fn sweep_and_draw(path: &Path) {
    println!("\nthroughput vs clients, for the plot ({path:?}):");
    let style = |peer: Peer| match peer {
        Peer::TcpoolStd => (RGBColor(31, 119, 180), Marker::Square),
        Peer::TokioCurrentThread => (RGBColor(230, 110, 0), Marker::Disc),
        Peer::Threads => (RGBColor(44, 150, 44), Marker::Diamond),
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
        let results = report::interleaved(&Peer::ALL, work, ROUNDS, |addr| {
            clients::echo_chunks(addr, n)
        });
        report::print(
            &format!("plot/echo_throughput/{n}_clients"),
            work,
            &results,
            &Peer::PAIRS,
        );
        for (s, m) in series.iter_mut().zip(&results) {
            s.points.push((n, m.median));
        }
    }
    let chart = Chart {
        title: "Echo throughput vs clients: tcpool-std and its peers",
        x_desc: "clients (each writes a 64 KiB chunk and reads it back)",
        xs: &CLIENT_COUNTS,
        command: "TCPOOL_BENCH_PLOT=docs/throughput-vs-clients.svg cargo bench --bench std_peers",
        legend: SeriesLabelPosition::UpperLeft,
    };
    write(path, &chart, &series);
}

/// Draws `series` on `chart` to `path`, an SVG image (creating its
/// directory); panics on failure.
pub fn write(path: &Path, chart: &Chart<'_>, series: &[Series]) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {dir:?}: {e}"));
    }
    draw(path, chart, series, &machine()).unwrap_or_else(|e| panic!("draw {path:?}: {e}"));
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

const GREY: RGBColor = RGBColor(90, 90, 90);
const GRID: RGBColor = RGBColor(222, 222, 222);

/// Draws the series as a line chart, an SVG image: the x values evenly
/// spaced, MB/s on a linear y axis from 0, a legend, and a footer with the
/// date, the machine and the command.
fn draw(
    path: &Path,
    spec: &Chart<'_>,
    series: &[Series],
    machine: &str,
) -> Result<(), Box<dyn Error>> {
    const W: u32 = 1000;
    const H: u32 = 680;
    let root = SVGBackend::new(path, (W, H)).into_drawing_area();
    root.fill(&WHITE)?;
    let (upper, footer) = root.split_vertically(H - 70);
    let upper = upper.titled(spec.title, ("sans-serif", 28))?;

    let max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let (top, step) = y_scale(max);
    // x is the index of the value in `xs`: the values are evenly spaced.
    let xs = spec.xs;
    let last = xs.len().saturating_sub(1) as f64;
    let index = |x: usize| xs.iter().position(|&v| v == x).unwrap_or(0) as f64;
    let mut chart = ChartBuilder::on(&upper)
        .margin_left(20)
        .margin_right(40)
        .margin_top(10)
        .x_label_area_size(60)
        .y_label_area_size(80)
        .build_cartesian_2d(-0.2..last + 0.2, 0.0..top)?;
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .axis_style(BLACK.stroke_width(2))
        .x_labels(xs.len())
        .x_label_formatter(&|x| {
            let i = x.round();
            match xs.get(i as usize) {
                Some(v) if (x - i).abs() < 1e-6 && i >= 0.0 => v.to_string(),
                _ => String::new(),
            }
        })
        .y_labels((top / step).round() as usize + 1)
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style(("sans-serif", 18).into_font().color(&GREY))
        .axis_desc_style(("sans-serif", 18))
        .x_desc(spec.x_desc)
        .y_desc("MB/s")
        .draw()?;

    for s in series {
        let colour = s.colour;
        let points: Vec<(f64, f64)> = s.points.iter().map(|&(n, v)| (index(n), v)).collect();
        let line = colour.stroke_width(3);
        let marker = s.marker;
        let fill = colour.filled();
        let legend = chart
            .draw_series(LineSeries::new(points.clone(), line))?
            .label(s.name);
        // The legend's sample: a stretch of the line with the marker on it.
        let sample = move |(x, y)| {
            EmptyElement::at((x + 20, y)) + PathElement::new(vec![(-20, 0), (20, 0)], line)
        };
        match marker {
            Marker::Square => legend.legend(move |c| sample(c) + Rectangle::new(SQUARE, fill)),
            Marker::Disc => legend.legend(move |c| sample(c) + Circle::new((0, 0), 7, fill)),
            Marker::Diamond => legend.legend(move |c| sample(c) + Polygon::new(DIAMOND, fill)),
        };
        let at = points.into_iter().map(EmptyElement::at);
        match marker {
            Marker::Square => chart.draw_series(at.map(|p| p + Rectangle::new(SQUARE, fill)))?,
            Marker::Disc => chart.draw_series(at.map(|p| p + Circle::new((0, 0), 7, fill)))?,
            Marker::Diamond => chart.draw_series(at.map(|p| p + Polygon::new(DIAMOND, fill)))?,
        };
    }
    chart
        .configure_series_labels()
        .position(spec.legend.clone())
        .margin(15)
        .legend_area_size(50)
        .label_font(("sans-serif", 20))
        .background_style(WHITE.mix(0.9))
        .border_style(GREY)
        .draw()?;

    let centred = |size: u32| {
        ("sans-serif", size)
            .into_font()
            .color(&GREY)
            .pos(Pos::new(HPos::Center, VPos::Top))
    };
    let middle = W as i32 / 2;
    let line = format!("{}; 127.0.0.1, one process; {machine}", today());
    footer.draw(&Text::new(line, (middle, 10), centred(18)))?;
    footer.draw(&Text::new(spec.command, (middle, 38), centred(18)))?;
    root.present()?;
    Ok(())
}

/// The square marker's corners, around the point.
const SQUARE: [(i32, i32); 2] = [(-6, -6), (6, 6)];
/// The diamond marker's corners, around the point.
const DIAMOND: [(i32, i32); 4] = [(0, -8), (8, 0), (0, 8), (-8, 0)];
