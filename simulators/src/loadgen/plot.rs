//! `--plot FILE.svg`: one SVG with two charts of a run, drawn with plotters' SVG backend (no
//! system fonts needed).
//!
//! - Top: latency by percentile, the HdrHistogram way: the x axis is "nines"
//!   (`-log10(1 - q)`: 1 = p90, 2 = p99, 3 = p99.9), the y axis milliseconds.
//! - Bottom: answers per second over the run (each one-second bucket at its middle), warmup
//!   shaded.

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
    draw(report, path).map_err(|e| format!("cannot draw {}: {e}", path.display()))
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

fn draw(r: &RunReport, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (960, 760)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(400);
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

    // Throughput over time.
    let series: Vec<(f64, f64)> = r
        .throughput_per_s
        .iter()
        .enumerate()
        .map(|(i, n)| (i as f64 + 0.5, *n as f64))
        .collect();
    let t_max = (series.len() as f64).max(1.0) + 0.5;
    let n_max = series.iter().map(|p| p.1).fold(1.0, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(&bottom)
        .caption("answers per second", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..t_max, 0f64..n_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds since start (warmup shaded)")
        .y_desc("answers/s")
        .draw()?;
    if r.warmup_s > 0.0 {
        chart.draw_series(std::iter::once(Rectangle::new(
            [(0.0, 0.0), (r.warmup_s, n_max)],
            RGBColor(230, 230, 230).filled(),
        )))?;
    }
    chart.draw_series(LineSeries::new(series, RED.stroke_width(2)))?;
    root.present()?;
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
