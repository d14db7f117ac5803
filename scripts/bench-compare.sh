#!/usr/bin/env bash
# Runs the crate's benchmarks (examples/bench.rs, release) and the Python reference's
# (scripts/bench/reference_bench.py) on the same workloads, one after the other, and writes
# docs/BENCHMARKS.md. The LAST line printed is one JSON object with the headline ratios.
#
#   scripts/bench-compare.sh [--quick]        (--quick: smaller repetitions, a few minutes)
#
# Python: $PYTHON, else .venv/bin/python, else python3; it needs
# scripts/bench/requirements.txt. Extra arguments for both sides: $BENCH_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=""
for a in "$@"; do
  case "$a" in
    --quick) QUICK="--quick" ;;
    *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
  esac
done

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
if ! "$PYTHON" -c "import numpy, torch, sympy, tokenizers, safetensors" 2>/dev/null; then
  echo "error: $PYTHON lacks the reference's packages; set PYTHON or run:" >&2
  echo "  python -m venv .venv && .venv/bin/pip install -r scripts/bench/requirements.txt" >&2
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

echo "== burn-engram (flex)" >&2
"$BIN" --out "$OUT/ours.json" "${ARGS[@]}" >&2
echo "== Python reference (numpy + torch CPU)" >&2
"$PYTHON" scripts/bench/reference_bench.py --out "$OUT/ref.json" "${ARGS[@]}" >&2

if [[ -z "$QUICK" ]]; then  # keep the raw numbers of the run behind docs/BENCHMARKS.md
  mkdir -p docs/bench-results
  cp "$OUT/ours.json" docs/bench-results/ours.json
  cp "$OUT/ref.json" docs/bench-results/reference.json
fi
"$PYTHON" scripts/bench/render.py --ours "$OUT/ours.json" --ref "$OUT/ref.json" \
  --doc "$DOC" --mode "$([[ -n "$QUICK" ]] && echo quick || echo full)"
