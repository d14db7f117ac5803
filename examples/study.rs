//! The TinyEngram study in one command: base vs LoRA vs Engram, learning vs forgetting.
//!
//! ```text
//! cargo run --release --example study                   # miniature, CPU, no downloads
//! cargo run --release --example study -- --ablations    # + the five ablation studies
//! cargo run --release --example study -- --model-dir Qwen3-0.6B --data glaive.json \
//!     --device cuda --profile published                 # the real study (bf16 on the GPU)
//! ```
//! Without arguments: the embedded base model, generated glaive-style rows, the fact probe;
//! with `--model-dir`/`--data`: that Qwen3, that glaive export and TruthfulQA MC v1
//! (`study::StudySetup`). Writes `runs/<name>/` (results, tables, figures); runs resume.

#[path = "common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::process::ExitCode;

use burn_engram::Result;
use burn_engram::study::{
    Ablation, Event, Profile, RunResult, StudySetup, matched_loss, matched_table, run_ablations,
    run_main, select_main_runs, table,
};
use clap::Parser;
use common::flags::{DeviceFlags, finish};
use common::study_view::StudyView;

// Burn's CPU backend allocates per op; mimalloc reuses freed memory (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Settings the runs start from: miniature, published or paper (default: miniature, or
    /// published with --model-dir).
    #[arg(long)]
    profile: Option<Profile>,
    /// Main runs to do (a subset; two processes can split them, a last call collects).
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
    /// Train each run for exactly N steps, the schedule spanning them (HF's max_steps).
    #[arg(long, value_parser = common::at_least_one)]
    max_steps: Option<usize>,
    /// Stop each training run after N steps of its full schedule (for quick looks).
    #[arg(long, value_parser = common::at_least_one)]
    stop_after: Option<usize>,
    /// Replace run folders that hold other runs (by default a finished run is reused only
    /// when its manifest matches; otherwise the study stops, naming the differences).
    #[arg(long)]
    overwrite: bool,
    /// Checkpoint every N steps (runs resume from them).
    #[arg(long, default_value_t = 50)]
    save_every: usize,
    /// Seeds per run (data order and initialization); tables give mean and spread.
    #[arg(long, default_value_t = 1, value_parser = common::at_least_one)]
    seeds: usize,
    /// Measure answers and probe every N steps and at the end (a multiple of the profile's
    /// eval interval; default: 25 miniature, 100 otherwise).
    #[arg(long)]
    probe_every: Option<usize>,
    #[command(flatten)]
    device: DeviceFlags,
}

fn run(args: Args) -> Result<()> {
    let (started, (device, precision)) = (std::time::Instant::now(), args.device.select(true)?);
    let setup = StudySetup {
        model_dir: args.model_dir.clone(),
        data: args.data.clone(),
        rows: args.rows,
        profile: args.profile,
        limit: args.limit,
        max_len: args.max_len,
        max_steps: args.max_steps,
        stop_after: args.stop_after,
        save_every: args.save_every,
        probe_every: args.probe_every,
        overwrite: args.overwrite,
    };
    let study = setup.assemble(device, precision, &mut |line| eprintln!("{line}"))?;
    let (inputs, defaults, out) = (&study.inputs, &study.defaults, args.runs.join(&args.name));
    let view = StudyView::new();
    let ev: &mut dyn FnMut(&str, Event) = &mut |name, e| view.event(name, e);
    let specs = select_main_runs(&args.main)?;
    let results = run_main(inputs, defaults, &specs, args.seeds, &out, ev)?;
    view.finish();
    let base: Option<&RunResult> = results.iter().find(|r| r.method == "base");
    println!("\n{}", table(&results, base));
    let matched = matched_loss(&results);
    if !matched.is_empty() {
        let t = matched_table(&matched, base);
        println!("At a matched eval loss:\n\n{t}");
    }
    if args.ablations {
        let mut on_done = |ab: &Ablation, r: &[RunResult]| {
            view.finish();
            println!("\n## {}\n\n{}", ab.title, table(r, base));
        };
        let (dir, seeds) = (&args.ablation_dir, args.seeds);
        run_ablations(
            inputs,
            defaults,
            dir,
            seeds,
            &results,
            &out,
            ev,
            &mut on_done,
        )?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!("wrote {} ({secs:.0} s)", out.join("results.json").display());
    Ok(())
}

fn main() -> ExitCode {
    common::init_logging();
    finish(run(Args::parse()))
}
