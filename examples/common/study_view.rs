//! The study's progress on stderr: one bar per run on a terminal, plain lines elsewhere.

use std::cell::RefCell;
use std::io::IsTerminal;

use burn_engram::study::Event;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Shows [`Event`]s of named runs.
pub struct StudyView {
    bars: MultiProgress,
    /// Off a terminal the bars draw nothing: plain lines say what happens instead.
    plain: bool,
    current: RefCell<Option<(String, ProgressBar)>>,
}

impl StudyView {
    pub fn new() -> Self {
        Self {
            bars: MultiProgress::new(),
            plain: !std::io::stderr().is_terminal(),
            current: RefCell::new(None),
        }
    }

    /// Ends the current run's bar.
    pub fn finish(&self) {
        if let Some((_, b)) = self.current.borrow_mut().take() {
            b.finish();
        }
    }

    /// One event of run `name`.
    pub fn event(&self, name: &str, e: Event) {
        if self
            .current
            .borrow()
            .as_ref()
            .is_none_or(|(n, _)| n != name)
        {
            self.finish();
            let style = "{prefix:>14} {bar:30} {pos}/{len} {msg} [{elapsed_precise} < {eta}]";
            let style = ProgressStyle::with_template(style).expect("static template");
            let b = self.bars.add(ProgressBar::new(0).with_style(style));
            b.set_prefix(name.to_string());
            *self.current.borrow_mut() = Some((name.to_string(), b));
        }
        let cur = self.current.borrow();
        let Some((_, b)) = cur.as_ref() else { return };
        // plain lines give 4 decimals, the bar 3 (as before the display moved here)
        let eval = |l: Option<f64>, label: &str, digits: usize| {
            l.map_or(String::new(), |l| format!(" {label} {l:.digits$}"))
        };
        match e {
            Event::Step(m) => {
                if self.plain && (m.eval_loss.is_some() || m.step == 1) {
                    eprintln!(
                        "{name}: step {}/{} train loss {:.4}{} {:.0} tok/s",
                        m.step,
                        m.total_steps,
                        m.loss,
                        eval(m.eval_loss, "eval loss", 4),
                        m.tokens_per_s
                    );
                }
                b.set_length(m.total_steps as u64);
                b.set_position(m.step as u64);
                let msg = format!(
                    "train {:.3}{} {:.0} tok/s",
                    m.loss,
                    eval(m.eval_loss, "eval", 3),
                    m.tokens_per_s
                );
                b.set_message(msg);
            }
            Event::Probe { done, total } => {
                b.set_length(total as u64);
                b.set_position(done as u64);
                b.set_message("multiple choice");
                if self.plain && done == total {
                    eprintln!("{name}: multiple choice scored ({total} questions)");
                }
            }
            Event::Reused(dir) => self.bars.suspend(|| {
                eprintln!(
                    "{name}: reused {} (finished; its manifest matches)",
                    dir.display()
                )
            }),
            Event::Resumed(dir) => self.bars.suspend(|| {
                eprintln!(
                    "{name}: resuming {} from its latest checkpoint",
                    dir.display()
                )
            }),
        }
    }
}
