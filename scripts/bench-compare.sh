#!/usr/bin/env bash
# Runs the crate's benchmarks (examples/bench, release) and the Python reference's
# (scripts/bench/reference_bench.py) on the same workloads, interleaved for several rounds
# (ours, reference, ours, reference, ...), and writes docs/BENCHMARKS.md from the medians.
# The LAST line printed is one JSON object with the headline ratios (medians of the per-round
# ratios), their spread and the machine.
#
#   scripts/bench-compare.sh [--quick] [--rounds N]   (--quick: fewer repetitions, 2 rounds)
#
# Python: $PYTHON, else .venv/bin/python; with neither, .venv is created here from the pinned
# scripts/bench/requirements.txt (CPU wheels). Extra arguments for both sides: $BENCH_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=""
ROUNDS=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK="--quick" ;;
    --rounds) ROUNDS="${2:?--rounds needs a number}"; shift ;;
    *) echo "usage: $0 [--quick] [--rounds N]" >&2; exit 2 ;;
  esac
  shift
done
if [[ -z "$ROUNDS" ]]; then if [[ -n "$QUICK" ]]; then ROUNDS=2; else ROUNDS=3; fi; fi
if ! [[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]]; then echo "error: --rounds $ROUNDS is not a count" >&2; exit 2; fi

if [[ -z "${PYTHON:-}" ]]; then
  if [[ ! -x .venv/bin/python ]]; then
    echo "== creating .venv from scripts/bench/requirements.txt (one time)" >&2
    python3 -m venv .venv
    .venv/bin/pip install --quiet -r scripts/bench/requirements.txt >&2
  fi
  PYTHON=.venv/bin/python
fi
if ! "$PYTHON" -c "import numpy, torch, sympy, tokenizers, safetensors" 2>/dev/null; then
  echo "error: $PYTHON lacks the reference's packages (scripts/bench/requirements.txt)" >&2
  exit 1
fi

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
# The full run fills docs/BENCHMARKS.md; a quick run only prints (set BENCH_DOC to keep it).
if [[ -n "$QUICK" ]]; then DOC="${BENCH_DOC:-$OUT/BENCHMARKS.quick.md}"; else DOC="${BENCH_DOC:-docs/BENCHMARKS.md}"; fi
# The same workloads on both sides (B, T, table sizes); repetitions differ only with --quick.
ARGS=(--batch 4 --seq 1024 --hash-batch 16 --big-rows-per-head 83000 --step-dim 16
      --step-rows 10000,1000000,10000000)
if [[ -n "$QUICK" ]]; then ARGS+=(--quick); fi
# shellcheck disable=SC2206
ARGS+=(${BENCH_ARGS:-})

echo "== building examples/bench.rs (release)" >&2
cargo build --release --example bench >&2
BIN="${CARGO_TARGET_DIR:-target}/release/examples/bench"

OURS=()
REFS=()
for r in $(seq 1 "$ROUNDS"); do
  echo "== round $r/$ROUNDS: burn-engram (flex)" >&2
  "$BIN" --out "$OUT/ours_$r.json" "${ARGS[@]}" >&2
  echo "== round $r/$ROUNDS: Python reference (numpy + torch CPU)" >&2
  "$PYTHON" scripts/bench/reference_bench.py --out "$OUT/ref_$r.json" "${ARGS[@]}" >&2
  OURS+=("$OUT/ours_$r.json")
  REFS+=("$OUT/ref_$r.json")
done

if [[ -z "$QUICK" ]]; then  # keep the raw numbers of the run behind docs/BENCHMARKS.md
  mkdir -p docs/bench-results
  for r in $(seq 1 "$ROUNDS"); do
    cp "$OUT/ours_$r.json" "docs/bench-results/ours_round$r.json"
    cp "$OUT/ref_$r.json" "docs/bench-results/reference_round$r.json"
  done
fi
"$PYTHON" scripts/bench/render.py --ours "${OURS[@]}" --ref "${REFS[@]}" \
  --doc "$DOC" --mode "$([[ -n "$QUICK" ]] && echo quick || echo full)"
