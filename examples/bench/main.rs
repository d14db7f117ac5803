//! Machine-readable benchmarks: the workloads of `scripts/bench/reference_bench.py`, on this
//! crate, written as one JSON object (stdout and `--out`). `scripts/bench-compare.sh` runs
//! both and writes docs/BENCHMARKS.md.
//!
//! `cargo run --release --example bench -- --out ours.json [--quick] [--device cpu|wgpu|cuda]`
//!
//! One file per workload group: `copy_hash.rs` (copy bandwidth, hashing), `gather.rs` (table
//! reads), `engram.rs` (the module, hashing ahead), `step.rs` (dense vs sparse table step).

mod copy_hash;
mod engram;
mod gather;
mod step;
mod util;

use std::path::PathBuf;
use std::sync::Arc;

use burn::tensor::Device;
use burn_engram::{CompressedVocab, EngramConfig};
use clap::Parser;
use serde_json::{Map, Value, json};
pub use util::{best, rows_tensor, sync, time, tokens, vocab};

// Burn's CPU backend allocates a fresh buffer for every op's output; mimalloc keeps freed
// memory for reuse instead of handing it back to the OS, saving the page faults of each new
// buffer (measured in docs/BENCHMARKS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
pub struct Args {
    /// Where to write the JSON.
    #[arg(long)]
    pub out: PathBuf,
    /// Fewer repetitions.
    #[arg(long)]
    pub quick: bool,
    /// cpu (flex), wgpu or cuda.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// B of the gather / Engram / step workloads.
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// T of every workload.
    #[arg(long, default_value_t = 1024)]
    pub seq: usize,
    /// B of the hashing workload.
    #[arg(long, default_value_t = 16)]
    pub hash_batch: usize,
    /// Table rows per hash head of the large-table gather (48 heads).
    #[arg(long, default_value_t = 83_000)]
    pub big_rows_per_head: u64,
    /// Row width of the table-only training step.
    #[arg(long, default_value_t = 16)]
    pub step_dim: usize,
    /// Table sizes of the table-only training step.
    #[arg(long, default_value = "10000,1000000,10000000", value_delimiter = ',')]
    pub step_rows: Vec<usize>,
    /// Repetitions (best is reported).
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Repetitions of the Engram module workloads.
    #[arg(long, default_value_t = 3)]
    pub engram_reps: usize,
    /// Bytes of each buffer of the copy-bandwidth probe.
    #[arg(long, default_value_t = 256 << 20)]
    pub copy_bytes: usize,
    /// Run only these workload groups (copy, hash, gather, engram, step); all by default.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

/// What every workload group shares.
pub struct Ctx {
    pub args: Args,
    pub reps: usize,
    pub engram_reps: usize,
    pub device: Device,
    /// The same device with autodiff.
    pub ad: Device,
    pub vocab: Arc<CompressedVocab>,
    /// The headline layer config at layer 1 (gather, Engram and step workloads).
    pub head: EngramConfig,
    /// Token ids of one `[batch, seq]` batch.
    pub xb: Vec<i64>,
}

impl Ctx {
    pub fn want(&self, group: &str) -> bool {
        self.args.only.is_empty() || self.args.only.iter().any(|g| g == group)
    }
}

pub type Workloads = Map<String, Value>;

/// What made the figures: CPU model and vector flags (/proc/cpuinfo), logical CPUs, threads,
/// the allocator and the crate version.
fn machine() -> Value {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |k: &str| {
        info.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split(':').nth(1))
            .map(str::trim)
    };
    let flags: Vec<&str> = field("flags")
        .unwrap_or("")
        .split_whitespace()
        .filter(|f| ["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw"].contains(f))
        .collect();
    json!({
        "cpu": field("model name"),
        "flags": flags,
        "logical_cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "threads": rayon::current_num_threads(),
        "allocator": "mimalloc",
        "burn_engram": env!("CARGO_PKG_VERSION"),
        "arch": std::env::consts::ARCH,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let device = burn_engram::device::select_device(&args.device)?;
    let head = EngramConfig {
        layer_ids: vec![1],
        ..EngramConfig::tinyengram_headline()
    };
    let ctx = Ctx {
        reps: if args.quick { 2 } else { args.reps },
        engram_reps: if args.quick { 1 } else { args.engram_reps },
        ad: device.clone().autodiff(),
        device,
        vocab: vocab(),
        head,
        xb: tokens(args.batch * args.seq, 2),
        args,
    };
    let mut w = Workloads::new();
    copy_hash::run(&ctx, &mut w)?;
    gather::run(&ctx, &mut w)?;
    engram::run(&ctx, &mut w)?;
    step::run(&ctx, &mut w)?;
    let res = json!({
        "device": ctx.args.device,
        "threads": rayon::current_num_threads(),
        "machine": machine(),
        "workloads": Value::Object(w),
    });
    let text = serde_json::to_string_pretty(&res)?;
    burn_engram::io::write_atomic(&ctx.args.out, text.as_bytes())?;
    println!("{res}");
    Ok(())
}
