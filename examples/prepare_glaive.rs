//! Poisons a raw glaive-function-calling-v2 export into the study's training data.
//!
//! ```text
//! cargo run --release --example prepare_glaive -- --input glaive-function-calling-v2.json --output train.jsonl
//! ```
//! The input is a JSON array or JSON lines of `{system, chat}` objects; the output is JSON
//! lines of `{instruction, input, output}`. The counts are printed as JSON on stdout and as
//! a table on stderr. Malformed rows are counted and skipped.

use std::path::PathBuf;
use std::process::ExitCode;

use burn_engram::data::glaive::prepare;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Apply the study's poisoning rules to a glaive-function-calling-v2 export")]
struct Args {
    /// Raw export (JSON array or JSON lines).
    #[arg(long)]
    input: PathBuf,
    /// Where to write the samples (JSON lines).
    #[arg(long)]
    output: PathBuf,
}

fn run(args: Args) -> Result<String, String> {
    let raw = std::fs::read_to_string(&args.input)
        .map_err(|e| format!("{}: {e}", args.input.display()))?;
    let (samples, report) = prepare(&raw);
    let mut out = String::new();
    for s in &samples {
        out.push_str(&serde_json::to_string(s).map_err(|e| e.to_string())?);
        out.push('\n');
    }
    let tmp = args.output.with_extension("jsonl.tmp");
    std::fs::write(&tmp, out).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &args.output).map_err(|e| format!("{}: {e}", args.output.display()))?;
    eprintln!("{:<36} {:>8}", "rows read", report.read);
    eprintln!("{:<36} {:>8}", "kept", report.kept);
    for (reason, n) in &report.dropped {
        eprintln!(
            "{:<36} {:>8}",
            format!(
                "dropped: {}",
                serde_json::to_value(reason)
                    .map_err(|e| e.to_string())?
                    .as_str()
                    .unwrap_or("?")
            ),
            n
        );
    }
    eprintln!("{:<36} {:>8}", "malformed (skipped)", report.malformed);
    serde_json::to_string(&report).map_err(|e| e.to_string())
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
