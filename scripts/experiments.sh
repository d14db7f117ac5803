#!/usr/bin/env bash
# The runs behind docs/EXPERIMENTS.md, in one command (CPU, no downloads):
#
#   bash scripts/experiments.sh            # sweep, then main comparison and ablations, 3 seeds
#   bash scripts/experiments.sh sweep      # only the learning-rate sweep
#   bash scripts/experiments.sh study      # only the 3-seed main comparison and ablations
#
# The miniature's runs use one CPU thread each (the model is too small for Burn's CPU backend
# to spread one op over cores), so the sweep and the ablations run as two processes side by
# side; every run is seeded, so the split changes no number. Results: runs/sweep/ and
# runs/seeds3/ (results.json, results.md, figures), copied to docs/figures/.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
cargo build --release --example study
study="${CARGO_TARGET_DIR:-target}/release/examples/study"
log() { printf '=== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

# Two processes side by side split the runs of one output folder (--main picks which main runs
# each does; studies that share runs stay in one lane); a last call with everything reads the
# finished runs back and writes the complete tables and figures.
lanes() { # name, lane A args, lane B args (each a quoted string), final args
  local name=$1 a=$2 b=$3 final=$4
  # shellcheck disable=SC2086
  "$study" --name "$name" $a >"/tmp/$name-a.log" 2>&1 &
  local pa=$!
  sleep 30 # both lanes write the folder's tables when they start: not at the same moment
  # shellcheck disable=SC2086
  "$study" --name "$name" $b >"/tmp/$name-b.log" 2>&1 &
  local pb=$!
  wait "$pa" || { cat "/tmp/$name-a.log"; exit 1; }
  wait "$pb" || { cat "/tmp/$name-b.log"; exit 1; }
  # shellcheck disable=SC2086
  "$study" --name "$name" $final
}

# One study folder per lane: `--ablation-dir` runs every study folder below it.
split() { # lane folder, study folders...
  local dir=$1
  shift
  mkdir -p "$dir"
  cp -r "$@" "$dir/"
}

if [[ "$what" == all || "$what" == sweep ]]; then
  # The learning-rate sweep: one seed, the probe at the end only.
  log "sweep"
  tmp=$(mktemp -d)
  split "$tmp/a" examples/sweeps/lora_lr
  split "$tmp/b" examples/sweeps/engram_lr
  lanes sweep "--main base,lora --probe-every 0 --ablations --ablation-dir $tmp/a" \
    "--main engram --probe-every 0 --ablations --ablation-dir $tmp/b" \
    "--probe-every 0 --ablations --ablation-dir examples/sweeps"
  rm -rf "$tmp"
fi

if [[ "$what" == all || "$what" == study ]]; then
  # The main comparison with 3 seeds (the probe every 25 steps), then the five ablations with
  # 3 seeds (the probe at the end).
  log "main comparison, 3 seeds"
  lanes seeds3 "--seeds 3 --main base,lora" "--seeds 3 --main engram" "--seeds 3"
  tmp=$(mktemp -d)
  split "$tmp/a" examples/studies/1_layers examples/studies/2_embed_dim examples/studies/3_heads
  split "$tmp/b" examples/studies/4_vocab_n3 examples/studies/5_vocab_n4
  log "ablations, 3 seeds"
  lanes seeds3 "--seeds 3 --probe-every 0 --ablations --ablation-dir $tmp/a" \
    "--seeds 3 --probe-every 0 --ablations --ablation-dir $tmp/b" \
    "--seeds 3 --ablations"
  rm -rf "$tmp"
fi
log "done"
