//! SVG charts of a run (plotters, SVG backend only: no fonts or image libraries):
//! `ratios.svg` (each scenario against its ceiling, with the target), `latency.svg`
//! (open-loop latency by percentile) and `scale.svg` (list p50 as the database grows).
//! Titles name the backend when it is not the default (`title`, e.g. " (PostgreSQL)");
//! on PostgreSQL with several round trips, every scenario appears once per round trip
//! (`get_by_id @0.5ms`).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::outcome::Entry;
use crate::scale::ScalePoint;

type Res = Result<(), String>;

fn err(e: impl std::fmt::Debug) -> String {
    format!("chart: {e:?}")
}

/// A white SVG canvas of `size` pixels at `path`.
fn canvas(path: &Path, size: (u32, u32)) -> Result<DrawingArea<SVGBackend<'_>, Shift>, String> {
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    Ok(root)
}

/// A chart on `root` in the style every chart of a run shares: its caption on top, the
/// same margin and axis label areas (the y axis's `y_label_area` wide).
fn titled<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    caption: String,
    y_label_area: u32,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(caption, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(y_label_area);
    builder
}

/// The legend of a chart with several lines, upper left.
fn legend<'a, 'b: 'a, CT: CoordTranslate>(chart: &mut ChartContext<'a, SVGBackend<'b>, CT>) -> Res {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)
}

/// Bars of `ratio` per scenario; a black tick marks the target.
pub fn ratios(path: &Path, entries: &[(String, Entry)], title: &str) -> Res {
    let bars: Vec<(&str, f64, Option<f64>)> = entries
        .iter()
        .filter_map(|(n, e)| match e {
            Entry::Done(o) => o.ratio.map(|r| (n.as_str(), r, o.ratio_min)),
            _ => None,
        })
        .collect();
    // Wide enough for every bar's label.
    let width = 800.max(140 * u32::try_from(bars.len()).unwrap_or(u32::MAX / 140));
    let root = canvas(path, (width, 420))?;
    let top = bars.iter().map(|b| b.1).fold(1.0f64, f64::max) * 1.1;
    let mut chart = titled(
        &root,
        format!("Throughput as a fraction of the same-run ceiling{title}"),
        50,
    )
    .build_cartesian_2d(0f64..bars.len().max(1) as f64, 0f64..top)
    .map_err(err)?;
    let names: Vec<String> = bars.iter().map(|b| b.0.to_owned()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(bars.len().max(1) * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.01 {
                names.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("ratio to ceiling")
        .draw()
        .map_err(err)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (_, r, _))| {
            let x = i as f64;
            Rectangle::new([(x + 0.2, 0.0), (x + 0.8, *r)], BLUE.mix(0.6).filled())
        }))
        .map_err(err)?;
    chart
        .draw_series(bars.iter().enumerate().filter_map(|(i, (_, _, target))| {
            let x = i as f64;
            target
                .map(|t| PathElement::new(vec![(x + 0.1, t), (x + 0.9, t)], BLACK.stroke_width(3)))
        }))
        .map_err(err)?;
    root.present().map_err(err)
}

/// Latency by percentile (x: "nines", 0 = p0, 2 = p99, 4 = p99.99) on a log scale.
pub fn latency(path: &Path, entries: &[(String, Entry)], title: &str) -> Res {
    let curves: Vec<(&str, Vec<(f64, f64)>)> = entries
        .iter()
        .filter_map(|(n, e)| match e {
            Entry::Done(o) if !o.percentiles.is_empty() && n != "scale" => Some((
                n.as_str(),
                o.percentiles
                    .iter()
                    .map(|(q, ms)| ((-(1.0 - q).max(1e-5).log10()).min(5.0), ms.max(0.001)))
                    .collect(),
            )),
            _ => None,
        })
        .collect();
    let max = curves
        .iter()
        .flat_map(|c| c.1.iter().map(|p| p.1))
        .fold(1.0f64, f64::max);
    let root = canvas(path, (800, 460))?;
    let mut chart = titled(&root, format!("Open-loop latency by percentile{title}"), 60)
        .build_cartesian_2d(0f64..5f64, (0.01f64..max * 2.0).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(6)
        .x_label_formatter(&|x| match x.round() as i64 {
            0 => "p0".into(),
            1 => "p90".into(),
            2 => "p99".into(),
            3 => "p99.9".into(),
            4 => "p99.99".into(),
            _ => "max".into(),
        })
        .y_desc("ms")
        .draw()
        .map_err(err)?;
    for (i, (name, points)) in curves.into_iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    legend(&mut chart)?;
    root.present().map_err(err)
}

/// List p50 against database size, for the growing and the fixed project; one pair of
/// lines per series (per round trip to PostgreSQL, named by its label).
pub fn scale(path: &Path, series: &[(String, Vec<ScalePoint>)], title: &str) -> Res {
    let all = || series.iter().flat_map(|s| &s.1);
    let (Some(first), Some(last)) = (all().map(|p| p.0).min(), all().map(|p| p.0).max()) else {
        return Ok(());
    };
    let max = all().map(|p| p.1.max(p.2)).fold(0.1f64, f64::max);
    let root = canvas(path, (800, 420))?;
    let mut chart = titled(
        &root,
        format!("list_first_page p50 as the database grows{title}"),
        60,
    )
    .build_cartesian_2d(
        (first as f64 * 0.8..last as f64 * 1.25).log_scale(),
        0f64..max * 1.3,
    )
    .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("operations in the database")
        .y_desc("p50 ms")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()
        .map_err(err)?;
    for (i, (label, points)) in series.iter().enumerate() {
        let growing: Vec<(f64, f64)> = points.iter().map(|p| (p.0 as f64, p.1)).collect();
        let fixed: Vec<(f64, f64)> = points.iter().map(|p| (p.0 as f64, p.2)).collect();
        let colors = if series.len() == 1 {
            [RED.to_rgba(), BLUE.to_rgba()]
        } else {
            [
                Palette99::pick(2 * i).to_rgba(),
                Palette99::pick(2 * i + 1).to_rgba(),
            ]
        };
        for (what, color, line) in [
            ("project growing with the database", colors[0], growing),
            ("project of fixed size", colors[1], fixed),
        ] {
            chart
                .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
                .map_err(err)?
                .label(format!("{what}{label}"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart
                .draw_series(line.into_iter().map(|p| Circle::new(p, 4, color.filled())))
                .map_err(err)?;
        }
    }
    legend(&mut chart)?;
    root.present().map_err(err)
}
