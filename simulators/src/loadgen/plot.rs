//! `--plot FILE.svg`: one SVG with the charts of a run, drawn with plotters' SVG backend (no
//! system fonts needed).
//!
//! - Top: latency by percentile, the HdrHistogram way: the x axis is "nines"
//!   (`-log10(1 - q)`: 1 = p90, 2 = p99, 3 = p99.9), the y axis milliseconds.
//! - Middle: answers per second over the run (each bucket at its middle, as timed: a late
//!   sampler makes a bucket longer than a second, and the last one is shorter), warmup shaded.
//! - Bottom, with `--watch-pid`: the watched process's resident memory, each sample when it was
//!   read (at the end of its throughput bucket), on the same time axis.

use std::path::Path;

use plotters::prelude::*;

use super::report::RunReport;

/// Checks, before a run, that `--plot` names a `.svg` file in an existing folder. Only SVG is
/// drawn (no system fonts needed); a `.png` name would get SVG bytes under the wrong name.
pub fn check_svg_path(path: &Path) -> Result<(), String> {
    let svg = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("svg"));
    if !svg {
        return Err(format!(
            "--plot {}: loadgen draws SVG; give the file a .svg name (convert it afterwards if \
             you need a bitmap, e.g. with rsvg-convert)",
            path.display()
        ));
    }
    super::report::check_output_path(path, "--plot")
}

/// Draws `report` into the SVG file at `path`.
pub fn write_svg(report: &RunReport, path: &Path) -> Result<(), String> {
    let mut svg = String::new();
    draw(report, &mut svg).map_err(|e| format!("cannot draw {}: {e}", path.display()))?;
    super::report::write_whole(path, svg.as_bytes())
}

fn nines(percentile: f64) -> f64 {
    let rest = (1.0 - percentile / 100.0).max(1e-6);
    -rest.log10()
}

fn nines_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-x));
    if p < 99.0 {
        format!("p{p:.0}")
    } else {
        let text = format!("{p:.4}");
        format!("p{}", text.trim_end_matches('0').trim_end_matches('.'))
    }
}

fn draw(r: &RunReport, svg: &mut String) -> Result<(), Box<dyn std::error::Error>> {
    // A third chart, resident memory, when a process was watched (a soak is about memory).
    let rss = !r.watched_rss_kib.is_empty();
    let root =
        SVGBackend::with_string(svg, (960, if rss { 1120 } else { 760 })).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, rest) = root.split_vertically(400);
    let (bottom, low) = rest.split_vertically(360);
    let title = if r.label.is_empty() {
        format!(
            "{} x {} in flight, {} loop",
            r.connections, r.inflight, r.mode
        )
    } else {
        r.label.clone()
    };

    // Latency by percentile; the max is drawn at 5 nines at most.
    let points: Vec<(f64, f64)> = r
        .latency_curve
        .iter()
        .map(|p| (nines(p.percentile).min(5.0), p.latency_us as f64 / 1000.0))
        .collect();
    let x_max = points.iter().map(|p| p.0).fold(1.0, f64::max).ceil();
    let y_max = points.iter().map(|p| p.1).fold(0.1, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&top)
        .caption(
            format!("{title}: latency by percentile"),
            ("sans-serif", 20),
        )
        .margin(12)
        .margin_right(40)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_labels(x_max as usize + 1)
        .x_label_formatter(&|x| nines_label(*x))
        .draw()?;
    chart.draw_series(LineSeries::new(points, BLUE.stroke_width(2)))?;

    // Throughput over time, then (a soak) the watched process's memory on the same time axis,
    // which reaches the later of the two: memory is read at a bucket's end, after its middle.
    let answers = timed(
        r.throughput_per_s.iter().map(|n| *n as f64),
        &r.throughput_at_s,
        0.5,
    );
    let mib = timed(
        r.watched_rss_kib.iter().map(|kib| *kib as f64 / 1024.0),
        &r.watched_rss_at_s,
        1.0,
    );
    let t_max = answers
        .iter()
        .chain(&mib)
        .map(|p| p.0)
        .fold(1.0, f64::max)
        .ceil()
        + 0.5;
    let time = TimeAxis {
        t_max,
        shade_to: r.warmup_s,
    };
    let throughput = Chart {
        title: "answers per second".into(),
        x_desc: "seconds since start (warmup shaded)",
        y_desc: "answers/s",
    };
    over_time(&bottom, throughput, &answers, time, RED)?;
    if rss {
        let who = r
            .watched_pid
            .map_or_else(String::new, |pid| format!(" of process {pid}"));
        let unshaded = TimeAxis {
            shade_to: 0.0,
            ..time
        };
        let memory = Chart {
            title: format!("resident memory{who}"),
            x_desc: "seconds since start",
            y_desc: "MiB",
        };
        over_time(&low, memory, &mib, unshaded, GREEN)?;
    }
    root.present()?;
    Ok(())
}

/// The time axis of the per-second charts: to `t_max` seconds, shaded up to `shade_to` (the
/// warmup; 0 for none).
#[derive(Clone, Copy)]
struct TimeAxis {
    t_max: f64,
    shade_to: f64,
}

/// A chart's caption and axis names.
struct Chart {
    title: String,
    x_desc: &'static str,
    y_desc: &'static str,
}

/// Each value with its time in seconds since the start: the recorded time, or (a report without
/// times, or with fewer of them) `offset` seconds into its one-second bucket.
fn timed(values: impl Iterator<Item = f64>, at_s: &[f64], offset: f64) -> Vec<(f64, f64)> {
    values
        .enumerate()
        .map(|(i, v)| (at_s.get(i).copied().unwrap_or(i as f64 + offset), v))
        .collect()
}

/// Values at their times (seconds since the start), on a scale from 0 to 15% above the largest.
fn over_time(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    c: Chart,
    values: &[(f64, f64)],
    time: TimeAxis,
    color: RGBColor,
) -> Result<(), Box<dyn std::error::Error>> {
    let y_max = values.iter().map(|p| p.1).fold(1.0, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(area)
        .caption(c.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..time.t_max, 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc(c.x_desc)
        .y_desc(c.y_desc)
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    if time.shade_to > 0.0 {
        chart.draw_series(std::iter::once(Rectangle::new(
            [(0.0, 0.0), (time.shade_to, y_max)],
            RGBColor(230, 230, 230).filled(),
        )))?;
    }
    chart.draw_series(LineSeries::new(
        values.iter().copied(),
        color.stroke_width(2),
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_svg_name_is_taken() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(check_svg_path(&dir.path().join("run.svg")).is_ok());
        assert!(check_svg_path(&dir.path().join("RUN.SVG")).is_ok());
        let png = check_svg_path(&dir.path().join("run.png")).unwrap_err();
        assert!(png.contains(".svg name"), "{png}");
        assert!(check_svg_path(&dir.path().join("run")).is_err());
        assert!(check_svg_path(&dir.path().join("missing/run.svg")).is_err());
    }

    #[test]
    fn a_watched_process_gets_a_memory_chart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut r = crate::loadgen::report::tests::small_report();
        let plain = dir.path().join("plain.svg");
        write_svg(&r, &plain).expect("draws");
        let text = std::fs::read_to_string(&plain).expect("svg");
        assert!(text.contains("answers per second"), "no throughput chart");
        assert!(
            !text.contains("resident memory"),
            "a memory chart without a watched process"
        );
        r.set_watched_rss(4242, vec![100_000, 120_000, 118_000], vec![1.0, 2.0, 2.4]);
        let soak = dir.path().join("soak.svg");
        write_svg(&r, &soak).expect("draws");
        let text = std::fs::read_to_string(&soak).expect("svg");
        assert!(
            text.contains("resident memory of process 4242"),
            "no memory chart"
        );
    }

    #[test]
    fn values_are_drawn_at_their_recorded_times() {
        // A late second bucket (1.0–2.6 s) and a short last one (2.6–2.9 s).
        let points = timed([10.0, 20.0, 30.0].into_iter(), &[0.5, 1.8, 2.75], 0.5);
        assert_eq!(points, vec![(0.5, 10.0), (1.8, 20.0), (2.75, 30.0)]);
        // Without times (or too few), each value sits `offset` into its one-second bucket.
        let points = timed([10.0, 20.0].into_iter(), &[0.4], 0.5);
        assert_eq!(points, vec![(0.4, 10.0), (1.5, 20.0)]);
    }

    #[test]
    fn nines_and_labels() {
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-6);
        assert_eq!(nines_label(0.0), "p0");
        assert_eq!(nines_label(1.0), "p90");
        assert_eq!(nines_label(2.0), "p99");
        assert_eq!(nines_label(3.0), "p99.9");
        assert_eq!(nines_label(4.0), "p99.99");
    }
}
