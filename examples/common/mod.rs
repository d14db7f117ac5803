//! What the example binaries share: warnings on stderr and progress that works on a terminal
//! (a bar) and off one (plain lines, for nohup, batch jobs and CI logs).
#![allow(dead_code)] // each example uses its own part

pub mod flags;
mod progress;
pub mod study_view;

#[allow(unused_imports)] // not every example shows training progress
pub use progress::Progress;

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

/// CPU model and vector flags, from /proc/cpuinfo (Linux).
pub fn machine() -> serde_json::Value {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |k: &str| {
        info.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split(':').nth(1))
    };
    let flags = field("flags").unwrap_or("");
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    serde_json::json!({ "cpu": field("model name").map(str::trim), "avx2": has("avx2"),
        "avx512f": has("avx512f"), "threads": rayon::current_num_threads() })
}

/// The median of `v` (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median absolute deviation: the round-to-round spread.
pub fn spread(v: &[f64]) -> f64 {
    let m = median(v.to_vec());
    median(v.iter().map(|x| (x - m).abs()).collect())
}

/// Prints a benchmark's JSON object on one line and writes it (pretty) to `out` if given.
pub fn emit(v: &serde_json::Value, out: Option<&std::path::Path>) -> burn_engram::Result<()> {
    println!("{v}");
    match out {
        Some(p) => burn_engram::io::write_atomic(p, format!("{v:#}\n").as_bytes()),
        None => Ok(()),
    }
}
