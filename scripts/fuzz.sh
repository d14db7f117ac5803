#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ for a bounded time each (libFuzzer, coverage-guided).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     # default: 120 s, every target
#   scripts/fuzz.sh build                                 # only build the targets
#
# Targets: glaive, configs, checkpoints, vocab (see fuzz/src/lib.rs). Seeds are written from
# the test fixtures into fuzz/corpus/<target>/; the corpus grows there between runs.
# Crashes land in fuzz/artifacts/<target>/: replay one with
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>
# and keep it as a regression test in tests/reliability.rs.
#
# Toolchain: cargo-fuzz needs nightly rustc flags; the script uses `+nightly` when rustup has
# it, else stable with RUSTC_BOOTSTRAP=1. `-s none` (no AddressSanitizer): the crate and its
# readers are safe Rust, the findings sought are panics, aborts, overflows (debug assertions
# are on, `-a`), out-of-memory and hangs. Needs `cargo install cargo-fuzz` and a C++ compiler.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$root/fuzz/target}"

if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    cargo_fuzz=(cargo +nightly fuzz)
else
    export RUSTC_BOOTSTRAP=1
    cargo_fuzz=(cargo fuzz)
fi
build_flags=(-s none -a --release)
all_targets=(glaive configs checkpoints vocab)

seed() { # seed TARGET NAME SELECTOR-BYTE FILE|-
    local dir="corpus/$1"
    mkdir -p "$dir"
    { [ -n "$3" ] && printf "\\x$3"; if [ "$4" = - ]; then cat; else cat "$4"; fi; } >"$dir/seed-$2"
}

fx="$root/tests/fixtures"
seed glaive array "" - <<'JSON'
[{"system": "SYSTEM: You can call get_weather.", "chat": "USER: Weather in Paris? ASSISTANT: <functioncall> {\"name\": \"get_weather\"} <|endoftext|> FUNCTION RESPONSE: {} ASSISTANT: Sunny."},
 {"system": "SYSTEM: no access to external functions", "chat": "USER: hi ASSISTANT: hello"}]
JSON
seed glaive jsonl "" - <<'JSON'
{"system": "s", "chat": "USER: a ASSISTANT: <tool_code> x USER: b"}
{"instruction": "i", "input": "u", "output": "<functioncall> {}"}
JSON
seed configs engram 00 "$fx/qwen3/engram/engram_config.json"
seed configs qwen3 01 "$fx/qwen3/tied/config.json"
seed configs lora 02 "$fx/qwen3/lora/adapter_config.json"
echo '{"lr": 0.0001, "epochs": 2, "max_len": 64, "on_non_finite": "skip_step"}' | seed configs train 03 -
seed checkpoints engram 00 "$fx/engram/engram_forward_g1.safetensors"
seed checkpoints lora 02 "$fx/qwen3/lora/adapter_model.safetensors"
seed checkpoints qwen3 03 "$fx/qwen3/tied/model.safetensors"
seed checkpoints trainable 04 "$fx/engram/engram_forward_g1.safetensors"
echo '{"step": 1, "param_ids": {"engram.layers.0.value_proj.bias": 7}}' | seed checkpoints state 05 -
printf '' | seed checkpoints optim 06 -
seed vocab tokenizer 00 "$fx/qwen3/tied/tokenizer.json"
seed vocab tokenizer-config 01 "$fx/qwen3/tied/tokenizer_config.json"
printf '\0\0\0\0\0\0\0\0\1\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0' | seed vocab lookup 02 -

if [ "${1:-}" = build ]; then
    for t in "${all_targets[@]}"; do "${cargo_fuzz[@]}" build "${build_flags[@]}" "$t"; done
    exit 0
fi
secs="${1:-120}"
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")

for t in "${targets[@]}"; do
    echo "== $t: ${secs}s"
    set +e
    "${cargo_fuzz[@]}" run "${build_flags[@]}" "$t" "corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=4096 -timeout=20 -max_len=1048576 \
        -print_final_stats=1 2>&1 | tee "$CARGO_TARGET_DIR/fuzz-$t.log" |
        grep -E '^(==|#[0-9]+ +DONE|stat::|SUMMARY|.*panicked|.*Test unit written)'
    status=${PIPESTATUS[0]}
    set -e
    # scratch folders of finished fuzzing processes (fuzz/src/lib.rs writes inputs there)
    for d in /dev/shm/engram-fuzz-* "${TMPDIR:-/tmp}"/engram-fuzz-*; do
        if [ -d "$d" ] && ! kill -0 "${d##*-}" 2>/dev/null; then rm -rf "$d"; fi
    done
    [ "$status" -eq 0 ] || { echo "target $t failed (exit $status): see $CARGO_TARGET_DIR/fuzz-$t.log"; exit "$status"; }
done
