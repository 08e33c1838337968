//! The PNG chart: instructions against file size, both canisters (log-log).

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use plotters::style::FontStyle;

pub struct Series {
    pub label: String,
    pub color: RGBColor,
    /// (file size in bytes, instructions)
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
}

/// A point that failed (trapped), drawn as a cross.
pub struct Failure {
    pub label: String,
    pub at: (f64, f64),
}

fn register_font() -> Result<()> {
    // An embedded font (Ubuntu Light, from egui's default fonts): no system font lookup.
    plotters::style::register_font("sans-serif", FontStyle::Normal, epaint_default_fonts::UBUNTU_LIGHT)
        .map_err(|_| anyhow!("cannot load the embedded font"))
}

pub fn draw(
    path: &std::path::Path,
    title: &str,
    series: &[Series],
    failures: &[Failure],
    limits: &[(String, f64)],
) -> Result<()> {
    register_font()?;
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).chain(failures.iter().map(|f| f.at.0));
    let (x_min, x_max) = xs.fold((f64::MAX, 0f64), |(a, b), x| (a.min(x), b.max(x)));
    let ys = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .chain(failures.iter().map(|f| f.at.1))
        .chain(limits.iter().map(|l| l.1));
    let (y_min, y_max) = ys.fold((f64::MAX, 0f64), |(a, b), y| (a.min(y), b.max(y)));
    let root = BitMapBackend::new(path, (1100, 720)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 26))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(90)
        .build_cartesian_2d((x_min / 1.5..x_max * 1.5).log_scale(), (y_min / 3.0..y_max * 3.0).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("file size (bytes)")
        .y_desc("instructions")
        .x_label_formatter(&|x| crate::data::mb(*x as u64))
        .y_label_formatter(&|y| format!("{y:.0e}"))
        .label_style(("sans-serif", 15))
        .draw()?;
    for (label, y) in limits {
        chart
            .draw_series(DashedLineSeries::new(
                vec![(x_min / 1.5, *y), (x_max * 1.5, *y)],
                6,
                4,
                ShapeStyle::from(&BLACK.mix(0.5)).stroke_width(1),
            ))?
            .label(label.clone())
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.5)));
    }
    for s in series {
        let color = s.color;
        let style = ShapeStyle::from(&color).stroke_width(2);
        let anno = if s.dashed {
            chart.draw_series(DashedLineSeries::new(s.points.clone(), 8, 5, style))?
        } else {
            chart.draw_series(LineSeries::new(s.points.clone(), style))?
        };
        anno.label(s.label.clone()).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart.draw_series(s.points.iter().map(|p| Circle::new(*p, 4, color.filled())))?;
    }
    for f in failures {
        chart
            .draw_series(std::iter::once(Cross::new(f.at, 9, ShapeStyle::from(&RED).stroke_width(3))))?
            .label(f.label.clone())
            .legend(|(x, y)| Cross::new((x + 10, y), 6, ShapeStyle::from(&RED).stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()?;
    root.present()?;
    Ok(())
}
