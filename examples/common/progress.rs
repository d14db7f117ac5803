//! Training progress: a bar on a terminal, plain lines elsewhere (nohup, batch jobs, CI).

use std::io::IsTerminal;

use burn_engram::study::train::StepMetrics;
use indicatif::{ProgressBar, ProgressStyle};

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
