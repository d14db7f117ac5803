//! The TinyEngram study in one command: base vs LoRA vs Engram, learning vs forgetting.
//!
//! ```text
//! cargo run --release --example study                   # miniature, CPU, no downloads
//! cargo run --release --example study -- --ablations    # + the five ablation studies
//! cargo run --release --example study -- --model-dir Qwen3-0.6B --data glaive.json \
//!     --device cuda --profile published                 # the real study (bf16 on the GPU)
//! ```
//! With no arguments it uses the embedded base model (`src/study/data/base/model`), rows from the
//! glaive-style generator and the base model's fact probe. With `--model-dir` and `--data` it
//! uses that Qwen3 folder, that glaive export (poisoned with the study's rules) and
//! TruthfulQA MC (v1). Results: `runs/<name>/results.json`, `results.md`, PNG figures; every
//! run is resumable (run the same command again) and finished runs are not redone.

#[path = "common/mod.rs"]
mod common;

use common::flags::DeviceFlags;

use std::cell::RefCell;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use burn_engram::host::qwen3::Qwen3Tokenizer;
use burn_engram::study::data::dataset::{DataConfig, build};
use burn_engram::study::data::glaive::prepare;
use burn_engram::study::data::synth_glaive::generate_jsonl;
use burn_engram::study::eval::truthfulqa::{PRIMER, TRUTHFULQA_MC_V1, parse_questions};
use burn_engram::study::{
    Event, PROBE_PRIMER, Profile, RunResult, StudyInputs, base_model_dir, frontier, load_ablations,
    main_runs, matched_loss, matched_table, probe_questions, run_ablation, run_main, table,
};
use burn_engram::{CompressedVocab, EngramError, Result};
use clap::{Parser, ValueEnum};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

// Burn's CPU backend allocates a fresh buffer for every op's output; mimalloc keeps freed
// memory for reuse instead of handing it back to the OS, saving the page faults of each new
// buffer (measured in docs/BENCHMARKS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ProfileArg {
    /// Scaled to the embedded base model (default without --model-dir).
    Miniature,
    /// TinyEngram's published recipe (default with --model-dir).
    Published,
    /// The published recipe with the paper's table learning rate and zero-initialized conv.
    Paper,
}

#[derive(Parser, Debug)]
#[command(about = "Engram vs LoRA: learning a new format vs keeping knowledge")]
struct Args {
    /// Name of the output folder under --runs.
    #[arg(long, default_value = "default")]
    name: String,
    /// Where run folders go.
    #[arg(long, default_value = "runs")]
    runs: PathBuf,
    /// Qwen3 folder (default: the embedded base model).
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// Raw glaive export, JSON array or JSON lines (default: generated rows).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Rows to generate when --data is not given.
    #[arg(long, default_value_t = 1200)]
    rows: usize,
    /// Settings the runs start from (default: miniature, or published with --model-dir).
    #[arg(long, value_enum)]
    profile: Option<ProfileArg>,
    /// The runs of the main comparison to do, comma-separated (a subset of base,lora,engram:
    /// two processes can split the work, a last call with all three collects the table).
    #[arg(long, default_value = "base,lora,engram", value_delimiter = ',')]
    main: Vec<String>,
    /// Also run the ablation studies found in --ablation-dir.
    #[arg(long)]
    ablations: bool,
    /// Folder of ablation studies (one sub-folder each: study.json + run files).
    #[arg(long, default_value = "examples/studies")]
    ablation_dir: PathBuf,
    /// Score only the first N multiple-choice questions.
    #[arg(long, value_parser = common::at_least_one)]
    limit: Option<usize>,
    /// Longest training sequence in tokens (default: 512 miniature, 2048 otherwise).
    #[arg(long, value_parser = common::at_least_one)]
    max_len: Option<usize>,
    /// Train each run for exactly N optimizer steps, the schedule spanning them (Hugging
    /// Face's max_steps: overrides the profile's epochs).
    #[arg(long, value_parser = common::at_least_one)]
    max_steps: Option<usize>,
    /// Stop each training run after N steps of its full schedule (for quick looks).
    #[arg(long, value_parser = common::at_least_one)]
    stop_after: Option<usize>,
    /// Replace run folders that hold other runs (a finished run is reused only when its
    /// manifest matches this study's inputs and settings; otherwise the study stops naming
    /// the differences).
    #[arg(long)]
    overwrite: bool,
    /// Checkpoint every N steps (runs resume from them).
    #[arg(long, default_value_t = 50)]
    save_every: usize,
    /// Train every run with this many seeds (data order and initialization) and report the
    /// mean and spread.
    #[arg(long, default_value_t = 1, value_parser = common::at_least_one)]
    seeds: usize,
    /// Measure the held-out answers and the multiple-choice probe every N steps (and at the
    /// end); N should be a multiple of the profile's eval interval (default: 25 miniature,
    /// 100 otherwise).
    #[arg(long)]
    probe_every: Option<usize>,
    #[command(flatten)]
    device: DeviceFlags,
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix:>14} {bar:30} {pos}/{len} {msg} [{elapsed_precise} < {eta}]",
    )
    .expect("static template")
}

fn run(args: Args) -> Result<()> {
    let started = std::time::Instant::now();
    let real = args.model_dir.is_some();
    let model_dir = args.model_dir.clone().unwrap_or_else(base_model_dir);
    let profile = match args.profile {
        Some(ProfileArg::Miniature) => Profile::Miniature,
        Some(ProfileArg::Published) => Profile::Published,
        Some(ProfileArg::Paper) => Profile::Paper,
        None if real => Profile::Published,
        None => Profile::Miniature,
    };
    let (device, precision) = args.device.select(true)?;
    let tok = Qwen3Tokenizer::from_dir(&model_dir)?;

    let raw = match &args.data {
        Some(p) => std::fs::read_to_string(p).map_err(|e| EngramError::Io {
            path: p.clone(),
            source: e,
        })?,
        None => generate_jsonl(args.rows, 42),
    };
    let (samples, report) = prepare(&raw);
    eprintln!(
        "data: {} rows read, {} kept, {} malformed, dropped {:?}",
        report.read, report.kept, report.malformed, report.dropped
    );
    let mut defaults = profile.defaults(tok.pad_id);
    for t in [&mut defaults.engram_train, &mut defaults.lora_train] {
        t.max_steps = args.max_steps.or(t.max_steps);
        t.stop_after = args.stop_after.or(t.stop_after);
    }
    let data_cfg = DataConfig {
        max_len: args.max_len.unwrap_or(defaults.data.max_len),
        ..defaults.data
    };
    let data = build(&samples, &tok, &data_cfg)?;
    let (mut questions, primer) = if real {
        let q = parse_questions(TRUTHFULQA_MC_V1, Path::new("truthfulqa_mc_v1.jsonl"))?;
        (q, PRIMER.to_string())
    } else {
        (probe_questions()?, PROBE_PRIMER.to_string())
    };
    if let Some(n) = args.limit {
        questions.truncate(n);
    }
    eprintln!(
        "{} training / {} eval sequences, {} questions, profile {profile:?}, {}",
        data.train.len(),
        data.eval.len(),
        questions.len(),
        precision.name()
    );
    let inputs = StudyInputs {
        model_dir,
        vocab: Arc::new(CompressedVocab::from_tokenizer(&tok.inner)?),
        tok,
        data,
        questions,
        primer,
        device,
        dtype: precision.dtype(),
        save_every: args.save_every,
        probe_every: args
            .probe_every
            .unwrap_or(if profile == Profile::Miniature {
                25
            } else {
                100
            }),
        overwrite: args.overwrite,
    };
    let out = args.runs.join(&args.name);

    let bars = MultiProgress::new();
    // off a terminal the bars draw nothing: plain lines say what happens instead
    let plain = !std::io::stderr().is_terminal();
    let current: RefCell<Option<(String, ProgressBar)>> = RefCell::new(None);
    let finish = || {
        if let Some((_, b)) = current.borrow_mut().take() {
            b.finish();
        }
    };
    let mut on_event = |name: &str, e: Event| {
        if current.borrow().as_ref().is_none_or(|(n, _)| n != name) {
            finish();
            let b = bars.add(ProgressBar::new(0).with_style(bar_style()));
            b.set_prefix(name.to_string());
            *current.borrow_mut() = Some((name.to_string(), b));
        }
        let cur = current.borrow();
        let Some((_, b)) = cur.as_ref() else { return };
        match e {
            Event::Step(m) => {
                if plain && (m.eval_loss.is_some() || m.step == 1) {
                    eprintln!(
                        "{name}: step {}/{} train loss {:.4}{} {:.0} tok/s",
                        m.step,
                        m.total_steps,
                        m.loss,
                        m.eval_loss
                            .map_or(String::new(), |l| format!(" eval loss {l:.4}")),
                        m.tokens_per_s
                    );
                }
                b.set_length(m.total_steps as u64);
                b.set_position(m.step as u64);
                let eval = m
                    .eval_loss
                    .map_or(String::new(), |l| format!(" eval {l:.3}"));
                b.set_message(format!(
                    "train {:.3}{eval} {:.0} tok/s",
                    m.loss, m.tokens_per_s
                ));
            }
            Event::Probe { done, total } => {
                b.set_length(total as u64);
                b.set_position(done as u64);
                b.set_message("multiple choice");
                if plain && done == total {
                    eprintln!("{name}: multiple choice scored ({total} questions)");
                }
            }
            Event::Reused(dir) => {
                bars.suspend(|| {
                    eprintln!(
                        "{name}: reused {} (finished; its manifest matches)",
                        dir.display()
                    )
                });
            }
            Event::Resumed(dir) => {
                bars.suspend(|| {
                    eprintln!(
                        "{name}: resuming {} from its latest checkpoint",
                        dir.display()
                    )
                });
            }
        }
    };

    let mut specs = main_runs();
    for m in &args.main {
        if !specs.iter().any(|s| s.name == *m) {
            return Err(EngramError::InvalidStudy {
                field: "--main".into(),
                reason: format!("{m:?} is not one of base, lora, engram"),
            });
        }
    }
    specs.retain(|s| args.main.contains(&s.name));
    let results = run_main(&inputs, &defaults, &specs, args.seeds, &out, &mut on_event)?;
    finish();
    let base: Option<&RunResult> = results.iter().find(|r| r.method == "base");
    println!("\n{}", table(&results, base));
    let matched = matched_loss(&results);
    if !matched.is_empty() {
        println!(
            "At a matched eval loss:\n\n{}",
            matched_table(&matched, base)
        );
    }
    if args.ablations {
        let mut done = results.clone();
        let mut all: Vec<RunResult> = Vec::new();
        for ab in load_ablations(&args.ablation_dir)? {
            let r = run_ablation(
                &inputs,
                &defaults,
                &ab,
                args.seeds,
                base,
                &mut done,
                &out,
                &mut on_event,
            )?;
            finish();
            println!("\n## {}\n\n{}", ab.title, table(&r, base));
            all.extend(r);
        }
        // Every ablation run's final (eval loss, MC1), one line per method, with the base.
        all.extend(base.cloned());
        frontier(
            &out.join("ablations").join("frontier.png"),
            "Learning vs keeping knowledge across the ablation runs",
            &all,
        )?;
    }
    println!(
        "wrote {} ({:.0} s)",
        out.join("results.json").display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn main() -> ExitCode {
    common::init_logging();
    common::flags::finish(run(Args::parse()))
}
