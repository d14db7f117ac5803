//! What the example binaries share: warnings on stderr and progress that works on a terminal
//! (a bar) and off one (plain lines, for nohup, batch jobs and CI logs).
#![allow(dead_code)] // each example uses its own part

pub mod flags;
pub mod study_view;

use std::io::IsTerminal;

use burn_engram::study::train::StepMetrics;
use indicatif::{ProgressBar, ProgressStyle};

/// Shows the library's warnings (`log` records at warn and above; `RUST_LOG` overrides) as
/// `warning: ...` lines on stderr.
pub fn init_logging() {
    use std::io::Write;
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format(|buf, rec| {
            let level = rec.level().to_string().to_lowercase();
            let level = if level == "warn" {
                "warning".into()
            } else {
                level
            };
            writeln!(buf, "{level}: {}", rec.args())
        })
        .try_init();
}

/// Training progress: a bar when stderr is a terminal; otherwise one plain line every
/// `log_every` steps (and the first and last), one per eval and per skipped step.
pub struct Progress {
    bar: Option<ProgressBar>,
    log_every: usize,
}

impl Progress {
    /// A progress display for stderr.
    pub fn new(log_every: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            ProgressBar::new(0).with_style(
                ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} {msg} [{elapsed_precise} < {eta}]",
                )
                .expect("static template"),
            )
        });
        Self {
            bar,
            log_every: log_every.max(1),
        }
    }

    /// Whether a bar is shown (stderr is a terminal).
    pub fn is_bar(&self) -> bool {
        self.bar.is_some()
    }

    /// A line above the bar, or on stderr.
    pub fn println(&self, line: impl AsRef<str>) {
        match &self.bar {
            Some(bar) => bar.println(line.as_ref()),
            None => eprintln!("{}", line.as_ref()),
        }
    }

    /// Reports an optimizer step.
    pub fn step(&self, m: &StepMetrics) {
        let stats = format!(
            "loss {:.4} lr {:.2e} {:.0} tok/s",
            m.loss, m.lr, m.tokens_per_s
        );
        match &self.bar {
            Some(bar) => {
                bar.set_length(m.total_steps as u64);
                bar.set_position(m.step as u64);
                bar.set_message(stats);
            }
            None => {
                if m.step == 1 || m.step == m.total_steps || m.step.is_multiple_of(self.log_every) {
                    eprintln!(
                        "step {}/{} epoch {} {stats} elapsed {:.1}s",
                        m.step, m.total_steps, m.epoch, m.elapsed_s
                    );
                }
            }
        }
        if let Some(why) = &m.skipped {
            self.println(format!("step {}: skipped ({why})", m.step));
        }
        if let Some(e) = m.eval_loss {
            self.println(format!("step {}: eval loss {e:.4}", m.step));
        }
    }

    /// Ends the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

/// Parses `s` as a `T` that `ok` accepts; otherwise the message `s` + `why`.
fn parse_checked<T: std::str::FromStr>(
    s: &str,
    ok: impl Fn(&T) -> bool,
    why: &str,
) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    let v: T = s.parse().map_err(|e| format!("{e}"))?;
    if ok(&v) {
        Ok(v)
    } else {
        Err(format!("{s} {why}"))
    }
}

/// Parses a positive finite number (a learning rate, a norm).
pub fn positive(s: &str) -> Result<f64, String> {
    parse_checked(
        s,
        |v: &f64| v.is_finite() && *v > 0.0,
        "is not a positive finite number",
    )
}

/// Parses a finite number >= 0 (a weight decay).
pub fn non_negative(s: &str) -> Result<f32, String> {
    parse_checked(
        s,
        |v: &f32| v.is_finite() && *v >= 0.0,
        "is not a finite number >= 0",
    )
}

/// Parses a finite number >= 0 in f64 (a learning-rate multiplier).
pub fn non_negative_f64(s: &str) -> Result<f64, String> {
    parse_checked(
        s,
        |v: &f64| v.is_finite() && *v >= 0.0,
        "is not a finite number >= 0",
    )
}

/// Parses a fraction in [0, 1].
pub fn fraction(s: &str) -> Result<f64, String> {
    parse_checked(
        s,
        |v: &f64| (0.0..=1.0).contains(v),
        "is not a fraction in [0, 1]",
    )
}

/// Parses a count >= 1 (a batch size, a number of epochs or steps).
pub fn at_least_one(s: &str) -> Result<usize, String> {
    parse_checked(s, |v: &usize| *v >= 1, "must be at least 1")
}
