//! PNG figures of a study with plotters: eval-loss curves, MC1/MC2 bars, and one two-panel
//! figure per ablation (eval loss | MC1 and MC2 per run). Text uses the DejaVu Sans Mono font
//! shipped in `src/study/font/` (registered with plotters once), so no system fonts are needed.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::runner::RunResult;
use crate::error::{EngramError, Result};

const FONT: &[u8] = include_bytes!("font/DejaVuSansMono.ttf");
const FAMILY: &str = "sans-serif";
static REGISTER: Once = Once::new();

fn font_ready() {
    REGISTER.call_once(|| {
        // A font that cannot be parsed is a build defect; the figures then carry no text.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn plot_err(path: &Path, e: impl std::fmt::Display) -> EngramError {
    EngramError::bad_file(path, format!("cannot draw the figure: {e}"))
}

/// Eval loss over training steps, one line (with markers) per trained run, and the base
/// model's eval loss as a grey level line.
pub fn eval_loss_curves(path: &Path, title: &str, runs: &[RunResult]) -> Result<()> {
    font_ready();
    let curves: Vec<&RunResult> = runs.iter().filter(|r| !r.eval_curve.is_empty()).collect();
    let base = runs
        .iter()
        .find(|r| r.method == "base")
        .and_then(|r| r.eval_loss)
        .filter(|l| l.is_finite());
    let (mut max_step, mut lo, mut hi) = (1usize, f64::INFINITY, f64::NEG_INFINITY);
    for r in &curves {
        for &(s, l) in &r.eval_curve {
            max_step = max_step.max(s);
            lo = lo.min(l);
            hi = hi.max(l);
        }
    }
    if let Some(b) = base {
        (lo, hi) = (lo.min(b), hi.max(b));
    }
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-3);
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FAMILY, 24))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0usize..max_step, (lo - pad)..(hi + pad))
        .map_err(|e| plot_err(path, e))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("eval loss")
        .label_style((FAMILY, 14))
        .draw()
        .map_err(|e| plot_err(path, e))?;
    for (i, r) in curves.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                r.eval_curve.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| plot_err(path, e))?
            .label(r.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(
                r.eval_curve
                    .iter()
                    .map(|&p| Circle::new(p, 4, color.filled())),
            )
            .map_err(|e| plot_err(path, e))?;
    }
    if let Some(b) = base {
        let grey = RGBColor(128, 128, 128);
        chart
            .draw_series(LineSeries::new(
                [(0, b), (max_step, b)],
                grey.stroke_width(2),
            ))
            .map_err(|e| plot_err(path, e))?
            .label("base")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], grey.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .label_font((FAMILY, 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| plot_err(path, e))?;
    root.present().map_err(|e| plot_err(path, e))
}

/// Bars of named series per run: `series[k] = (name, value per run)`.
fn bars(
    area: &DrawingArea<BitMapBackend, Shift>,
    path: &Path,
    title: &str,
    labels: &[String],
    series: &[(&str, Vec<f64>)],
    y_desc: &str,
) -> Result<()> {
    let hi = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        .max(1e-6)
        * 1.15;
    let n = labels.len().max(1);
    let k = series.len().max(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FAMILY, 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..n as f64, 0f64..hi)
        .map_err(|e| plot_err(path, e))?;
    let names = labels.to_vec();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n * 2 + 1)
        .x_label_formatter(&move |x: &f64| {
            let i = x.floor() as usize;
            if (x - i as f64 - 0.5).abs() < 1e-6 {
                names.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc(y_desc)
        .label_style((FAMILY, 13))
        .draw()
        .map_err(|e| plot_err(path, e))?;
    for (s, (name, values)) in series.iter().enumerate() {
        let color = COLORS[s % COLORS.len()];
        let width = 0.8 / k;
        chart
            .draw_series(
                values
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| v.is_finite())
                    .map(|(i, &v)| {
                        let x0 = i as f64 + 0.1 + s as f64 * width;
                        Rectangle::new([(x0, 0.0), (x0 + width * 0.95, v)], color.filled())
                    }),
            )
            .map_err(|e| plot_err(path, e))?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    if series.len() > 1 {
        chart
            .configure_series_labels()
            .label_font((FAMILY, 13))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| plot_err(path, e))?;
    }
    Ok(())
}

fn labels(runs: &[RunResult]) -> Vec<String> {
    runs.iter().map(|r| r.label.clone()).collect()
}

fn mc_series(runs: &[RunResult]) -> [(&'static str, Vec<f64>); 2] {
    [
        ("MC1", runs.iter().map(|r| r.truthfulqa_mc1).collect()),
        ("MC2", runs.iter().map(|r| r.truthfulqa_mc2).collect()),
    ]
}

/// MC1 and MC2 bars per run.
pub fn score_bars(path: &Path, title: &str, runs: &[RunResult]) -> Result<()> {
    font_ready();
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    bars(&root, path, title, &labels(runs), &mc_series(runs), "score")?;
    root.present().map_err(|e| plot_err(path, e))
}

/// One ablation: eval loss per run (left), MC1/MC2 per run (right).
pub fn ablation_figure(path: &Path, title: &str, runs: &[RunResult]) -> Result<()> {
    font_ready();
    let root = BitMapBackend::new(path, (1400, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let (left, right) = root.split_horizontally(700);
    let loss: Vec<f64> = runs
        .iter()
        .map(|r| r.eval_loss.unwrap_or(f64::NAN))
        .collect();
    bars(
        &left,
        path,
        &format!("{title}: eval loss"),
        &labels(runs),
        &[("eval loss", loss)],
        "eval loss",
    )?;
    bars(
        &right,
        path,
        &format!("{title}: retention"),
        &labels(runs),
        &mc_series(runs),
        "score",
    )?;
    root.present().map_err(|e| plot_err(path, e))
}

/// Learning against forgetting, the seed study's way of comparing methods: one line per
/// trained run through its measured checkpoints, eval loss (learning the new format, lower is
/// better) on the x axis and MC1 (knowledge kept) on the y axis; the base model as a grey
/// diamond. The x axis runs from high loss to low, so training moves every line rightwards.
pub fn learning_vs_forgetting(path: &Path, title: &str, runs: &[RunResult]) -> Result<()> {
    font_ready();
    let trained: Vec<&RunResult> = runs.iter().filter(|r| !r.checkpoints.is_empty()).collect();
    let base = runs
        .iter()
        .find(|r| r.method == "base")
        .and_then(|r| r.eval_loss.map(|l| (l, r.truthfulqa_mc1)))
        .filter(|(l, m)| l.is_finite() && m.is_finite());
    let points = trained
        .iter()
        .filter(|r| r.method != "base")
        .flat_map(|r| r.checkpoints.iter().map(|c| (c.eval_loss, c.mc1)))
        .chain(base)
        .filter(|(l, m)| l.is_finite() && m.is_finite());
    let (mut lx, mut hx, mut ly, mut hy) = (f64::INFINITY, f64::NEG_INFINITY, 1.0f64, 0.0f64);
    for (l, m) in points {
        (lx, hx, ly, hy) = (lx.min(l), hx.max(l), ly.min(m), hy.max(m));
    }
    if !lx.is_finite() {
        (lx, hx, ly, hy) = (0.0, 1.0, 0.0, 1.0);
    }
    let (px, py) = (((hx - lx) * 0.06).max(1e-3), ((hy - ly) * 0.1).max(0.01));
    let root = BitMapBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FAMILY, 24))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((hx + px)..(lx - px), (ly - py)..(hy + py).min(1.05))
        .map_err(|e| plot_err(path, e))?;
    chart
        .configure_mesh()
        .x_desc("eval loss (nats/token; learning, right is better)")
        .y_desc("MC1 (knowledge kept)")
        .label_style((FAMILY, 14))
        .draw()
        .map_err(|e| plot_err(path, e))?;
    let mut methods: Vec<&str> = Vec::new();
    for r in trained.iter().filter(|r| r.method != "base") {
        if !methods.contains(&r.method.as_str()) {
            methods.push(&r.method);
        }
        let mi = methods.iter().position(|m| *m == r.method).unwrap_or(0);
        let color = COLORS[mi % COLORS.len()];
        let line: Vec<(f64, f64)> = r.checkpoints.iter().map(|c| (c.eval_loss, c.mc1)).collect();
        let series = chart
            .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
            .map_err(|e| plot_err(path, e))?;
        if r.seed
            == runs
                .iter()
                .filter(|x| x.method == r.method)
                .map(|x| x.seed)
                .min()
                .unwrap_or(r.seed)
        {
            series.label(r.label.clone()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        }
        chart
            .draw_series(line.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(|e| plot_err(path, e))?;
    }
    if let Some(b) = base {
        let grey = RGBColor(128, 128, 128);
        chart
            .draw_series(std::iter::once(TriangleMarker::new(b, 8, grey.filled())))
            .map_err(|e| plot_err(path, e))?
            .label("base")
            .legend(move |(x, y)| TriangleMarker::new((x + 10, y), 6, grey.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .label_font((FAMILY, 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| plot_err(path, e))?;
    root.present().map_err(|e| plot_err(path, e))
}

/// The trade-off across runs: one line per method through its runs' final (eval loss, MC1),
/// ordered by eval loss, e.g. the runs of a learning-rate sweep; the base as a grey triangle.
/// The x axis runs from high loss to low, as in [`learning_vs_forgetting`].
pub fn frontier(path: &Path, title: &str, runs: &[RunResult]) -> Result<()> {
    let mut by_method: Vec<(String, Vec<RunResult>)> = Vec::new();
    for r in runs.iter().filter(|r| r.method != "base") {
        match by_method.iter_mut().find(|(m, _)| *m == r.method) {
            Some((_, v)) => v.push(r.clone()),
            None => by_method.push((r.method.clone(), vec![r.clone()])),
        }
    }
    // One pseudo-run per method whose "checkpoints" are its runs' final scores.
    let mut lines: Vec<RunResult> = by_method
        .into_iter()
        .filter_map(|(method, v)| {
            let mut points: Vec<_> = v
                .iter()
                .filter_map(|r| r.checkpoints.last().copied())
                .collect();
            points.sort_by(|a, b| b.eval_loss.total_cmp(&a.eval_loss));
            let first = v.first()?.clone();
            Some(RunResult {
                label: method.clone(),
                seed: 0,
                checkpoints: points,
                ..first
            })
        })
        .collect();
    lines.extend(runs.iter().filter(|r| r.method == "base").cloned());
    learning_vs_forgetting(path, title, &lines)
}
