#!/usr/bin/env bash
# The runs behind docs/EXPERIMENTS.md, in one command (CPU, no downloads):
#
#   bash scripts/experiments.sh            # sweep, then main comparison and ablations, 3 seeds
#   bash scripts/experiments.sh sweep      # only the learning-rate sweep
#   bash scripts/experiments.sh study      # only the 3-seed main comparison and ablations
#
# The miniature's runs use one CPU thread each (the model is too small for Burn's CPU backend
# to spread one op over cores), so the sweep and the ablations run as two processes side by
# side; every run is seeded, so the split changes no number. Results: runs/sweep/,
# runs/seeds3/ (the main comparison) and runs/ablations3/ (results.json, results.md,
# figures); the files docs/EXPERIMENTS.md shows are copied to docs/figures/.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
cargo build --release --example study
study="${CARGO_TARGET_DIR:-target}/release/examples/study"
fig=docs/figures # where each part copies the files docs/EXPERIMENTS.md shows
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
  cp runs/sweep/ablations/lora_lr/results.json "$fig/sweep_lora_lr.json"
  cp runs/sweep/ablations/engram_lr/results.json "$fig/sweep_engram_lr.json"
  cp runs/sweep/ablations/frontier.png "$fig/sweep_frontier.png"
fi

if [[ "$what" == all || "$what" == study ]]; then
  # The main comparison with 3 seeds, the probe every 25 steps.
  log "main comparison, 3 seeds"
  lanes seeds3 "--seeds 3 --main base,lora" "--seeds 3 --main engram" "--seeds 3"
  # The five ablations with 3 seeds, the probe at the end only, in a folder of their own (a
  # finished run is read back only with the settings it was made with, the probe's interval
  # among them): first the base and the headline Engram run (layers 1,2; d128 h16;
  # 500/100/100), which the studies read back, then the studies in two lanes.
  log "ablations, 3 seeds"
  abl="--seeds 3 --main base,engram --probe-every 0"
  # shellcheck disable=SC2086
  "$study" --name ablations3 $abl >/tmp/ablations3-main.log 2>&1 || {
    cat /tmp/ablations3-main.log
    exit 1
  }
  tmp=$(mktemp -d)
  split "$tmp/a" examples/studies/1_layers examples/studies/2_embed_dim examples/studies/3_heads
  split "$tmp/b" examples/studies/4_vocab_n3 examples/studies/5_vocab_n4
  # LoRA at 2e-2 (the sweep's rule on the redone LoRA sweep) with 3 seeds, beside the
  # profile's 1e-2: a study of one run, in the second lane only (not a default ablation)
  mkdir -p "$tmp/b/lora_2e-2"
  cp examples/sweeps/lora_lr/5_lr_2e-2.json "$tmp/b/lora_2e-2/"
  printf '{\n  "title": "LoRA at 2e-2",\n  "x_label": "peak learning rate"\n}\n' \
    >"$tmp/b/lora_2e-2/study.json"
  lanes ablations3 "$abl --ablations --ablation-dir $tmp/a" \
    "$abl --ablations --ablation-dir $tmp/b" "$abl --ablations"
  rm -rf "$tmp"
  cp runs/seeds3/results.json "$fig/results_seeds3.json"
  for f in eval_loss truthfulqa learning_vs_forgetting; do cp "runs/seeds3/$f.png" "$fig/"; done
  cp runs/ablations3/ablations/lora_2e-2/results.json "$fig/results_lora_2e-2.json"
  cp runs/ablations3/ablations/frontier.png "$fig/ablation_frontier.png"
  for d in runs/ablations3/ablations/[0-9]_*/; do
    n=$(basename "$d")
    cp "$d/$n.png" "$fig/ablation_${n#[0-9]_}.png"
  done
fi
log "done"
