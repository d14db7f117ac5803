//! Poisons a raw glaive-function-calling-v2 export into the study's training data.
//!
//! ```text
//! cargo run --release --example prepare_glaive -- --input glaive-function-calling-v2.json --output train.jsonl
//! ```
//! The input is a JSON array or JSON lines of `{system, chat}` objects (a UTF-8 byte-order
//! mark is skipped; a missing `system` is an empty one); the output is JSON lines of
//! `{instruction, input, output}`, written atomically. The counts are printed as JSON on
//! stdout and as a table on stderr. Malformed rows are counted and skipped. Errors (exit 1):
//! `--output` naming the input, no sample kept (nothing is written), and a JSON array cut
//! short, whose complete rows are written before the error names the byte offset of the cut.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use burn_engram::io::write_atomic;
use burn_engram::study::data::glaive::prepare;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Apply the study's poisoning rules to a glaive-function-calling-v2 export")]
struct Args {
    /// Raw export (JSON array or JSON lines).
    #[arg(long)]
    input: PathBuf,
    /// Where to write the samples (JSON lines); must not be the input.
    #[arg(long)]
    output: PathBuf,
}

/// The path with its folder resolved (the file itself need not exist).
fn resolved(p: &Path) -> PathBuf {
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match (parent.canonicalize(), p.file_name()) {
        (Ok(d), Some(n)) => d.join(n),
        _ => p.to_path_buf(),
    }
}

fn run(args: Args) -> Result<String, String> {
    if resolved(&args.input) == resolved(&args.output) {
        return Err(format!(
            "--output {} is the input: choose another file (the export would be overwritten)",
            args.output.display()
        ));
    }
    let raw = std::fs::read_to_string(&args.input)
        .map_err(|e| format!("{}: {e}", args.input.display()))?;
    let (samples, report) = prepare(&raw);
    eprintln!("{:<36} {:>8}", "rows read", report.read);
    eprintln!("{:<36} {:>8}", "kept", report.kept);
    for (reason, n) in &report.dropped {
        let name = serde_json::to_value(reason).map_err(|e| e.to_string())?;
        let label = format!("dropped: {}", name.as_str().unwrap_or("?"));
        eprintln!("{label:<36} {n:>8}");
    }
    eprintln!("{:<36} {:>8}", "malformed (skipped)", report.malformed);
    for m in &report.malformed_examples {
        eprintln!("  {m}");
    }
    if samples.is_empty() {
        return Err(format!(
            "{}: no sample kept of {} rows read, nothing written",
            args.input.display(),
            report.read
        ));
    }
    let mut out = String::new();
    for s in &samples {
        out.push_str(&serde_json::to_string(s).map_err(|e| e.to_string())?);
        out.push('\n');
    }
    write_atomic(&args.output, out.as_bytes()).map_err(|e| e.to_string())?;
    let json = serde_json::to_string(&report).map_err(|e| e.to_string())?;
    if let Some(at) = report.truncated_at {
        println!("{json}");
        return Err(format!(
            "{}: the JSON array is cut short at byte {at} of {} (a truncated download?): the {} complete rows before it were read, their {} samples written to {}",
            args.input.display(),
            raw.len(),
            report.read,
            report.kept,
            args.output.display()
        ));
    }
    Ok(json)
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
