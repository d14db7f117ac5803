//! Shows what Engram computes for some tokens: compression, multipliers, table sizes and hash
//! ids of every layer, as one JSON object on stdout.
//!
//! ```text
//! cargo run --release --example inspect -- --tokenizer tokenizer.json --config engram.json \
//!     (--text "Hello world" | --ids-json batch.json) [--lookup 9707 --lookup 21927]
//! ```
//! `batch.json` holds a `[B, T]` batch: a JSON array of equally long arrays of token ids.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use burn_engram::{CompressedVocab, EngramConfig, NgramHasher};
use clap::{ArgGroup, Parser};
use serde_json::Value;

#[derive(Parser, Debug)]
#[command(about = "Print Engram's compression, multipliers, primes and hash ids as JSON")]
#[command(group(ArgGroup::new("input").required(true).args(["text", "ids_json"])))]
struct Args {
    /// tokenizer.json of the model.
    #[arg(long)]
    tokenizer: PathBuf,
    /// Engram config (JSON, reference field names).
    #[arg(long)]
    config: PathBuf,
    /// Text to encode (no special tokens added) as a batch of one row.
    #[arg(long)]
    text: Option<String>,
    /// A JSON file holding a [B, T] batch of raw token ids.
    #[arg(long)]
    ids_json: Option<PathBuf>,
    /// Raw ids whose compressed id to print (repeatable).
    #[arg(long = "lookup")]
    lookup: Vec<i64>,
}

fn run(args: Args) -> Result<Value, String> {
    let tokenizer =
        burn_engram::vocab::load_tokenizer(&args.tokenizer).map_err(|e| e.to_string())?;
    let config = EngramConfig::from_json_file(&args.config).map_err(|e| e.to_string())?;
    let vocab = Arc::new(CompressedVocab::from_tokenizer(&tokenizer).map_err(|e| e.to_string())?);
    let hasher = NgramHasher::new(&config, vocab).map_err(|e| e.to_string())?;

    let rows: Vec<Vec<i64>> = match (&args.text, &args.ids_json) {
        (Some(text), _) => {
            let enc = tokenizer
                .encode(text.as_str(), false)
                .map_err(|e| format!("encoding --text: {e}"))?;
            vec![enc.get_ids().iter().map(|&i| i as i64).collect()]
        }
        (None, Some(path)) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            serde_json::from_str(&text).map_err(|e| {
                format!(
                    "{}: expected a JSON array of arrays of integers: {e}",
                    path.display()
                )
            })?
        }
        (None, None) => return Err("give --text or --ids-json".into()),
    };
    burn_engram::inspect::inspect(&hasher, &rows, &args.lookup).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
