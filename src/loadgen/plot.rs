//! The report's picture (`report.svg`): latency over time on top (API p50/p99 and delivery
//! p99 per second), the latency distribution below (latency by percentile, the tail
//! stretched out: x = 1/(1 − q) on a log axis, as HdrHistogram's own plots do).

use super::report::Report;
use plotters::prelude::*;

/// Why the plot could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("drawing the plot: {0}")]
pub struct PlotError(String);

fn plot_error<E: std::fmt::Display>(error: E) -> PlotError {
    PlotError(error.to_string())
}

/// Draws the report as an SVG document.
pub fn svg(report: &Report) -> Result<String, PlotError> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (1000, 800)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let (top, bottom) = root.split_vertically(400);
        over_time(&top, report)?;
        distribution(&bottom, report)?;
        root.present().map_err(plot_error)?;
    }
    Ok(out)
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// A named, coloured line of (x, y) points.
type Line = (&'static str, RGBColor, Vec<(f64, f64)>);

fn over_time(area: &Area<'_>, report: &Report) -> Result<(), PlotError> {
    let points = &report.timeline;
    let series: [Line; 3] = [
        (
            "API p50",
            BLUE,
            points
                .iter()
                .filter_map(|p| p.api_p50_ms.map(|v| (p.second as f64, v)))
                .collect(),
        ),
        (
            "API p99",
            RED,
            points
                .iter()
                .filter_map(|p| p.api_p99_ms.map(|v| (p.second as f64, v)))
                .collect(),
        ),
        (
            "delivery p99",
            GREEN,
            points
                .iter()
                .filter_map(|p| p.delivery_p99_ms.map(|v| (p.second as f64, v)))
                .collect(),
        ),
    ];
    let x_max = (points.len() as f64).max(1.0);
    let y_max = series
        .iter()
        .flat_map(|(_, _, s)| s.iter().map(|p| p.1))
        .fold(1.0f64, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!(
                "latency over time — {:.0} calls/s offered, {:.0} ok/s",
                report.offered_per_second, report.calls_per_second
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc("ms")
        .draw()
        .map_err(plot_error)?;
    for (name, color, data) in series {
        if data.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(data, color.stroke_width(2)))
            .map_err(plot_error)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

/// 1/(1 − q) for a percentile, capped so 100 % lands at the right edge.
fn tail_x(percentile: f64) -> f64 {
    (1.0 / (1.0 - percentile / 100.0).max(1e-5)).min(1e5)
}

fn distribution(area: &Area<'_>, report: &Report) -> Result<(), PlotError> {
    let curves = [
        ("API", BLUE, &report.api_latency_curve),
        ("delivery", GREEN, &report.delivery_latency_curve),
    ];
    let y_max = curves
        .iter()
        .flat_map(|(_, _, c)| c.iter().map(|p| p.1))
        .fold(1.0f64, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption("latency by percentile", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d((1f64..1e5f64).log_scale(), 0f64..y_max)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("ms")
        .x_label_formatter(&|x| {
            let percentile = 100.0 * (1.0 - 1.0 / x);
            format!("{percentile:.3}")
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_owned()
                + "%"
        })
        .draw()
        .map_err(plot_error)?;
    for (name, color, curve) in curves {
        if curve.is_empty() {
            continue;
        }
        let data: Vec<(f64, f64)> = curve.iter().map(|&(p, ms)| (tail_x(p), ms)).collect();
        chart
            .draw_series(LineSeries::new(data, color.stroke_width(2)))
            .map_err(plot_error)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_axis_stretches_the_high_percentiles() {
        assert_eq!(tail_x(0.0), 1.0);
        assert!((tail_x(99.0) - 100.0).abs() < 1e-6);
        assert!((tail_x(99.9) - 1000.0).abs() < 1e-3);
        assert!((tail_x(100.0) - 1e5).abs() < 1e-3);
    }
}
