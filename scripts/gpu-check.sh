#!/usr/bin/env bash
# The GPU check, in two halves, for a GPU machine that has no network and no Rust toolchain:
#
#   scripts/gpu-check.sh build [DIR]   (here) builds, with the wgpu feature, the parity /
#                                      end-to-end test binary and the release bench example,
#                                      and puts them in DIR (default gpu-check/) with the
#                                      fixtures they read
#   scripts/gpu-check.sh run [DIR]     (on the GPU machine, from the repository root) runs
#                                      them on wgpu and writes DIR/results/: the test log,
#                                      bench.json (with a device-side copy-bandwidth probe)
#                                      and device.txt naming the GPU and the driver
#
# CUDA is not built: cubecl-cuda's build script downloads an LLVM bundle, which an offline
# build cannot. wgpu runs on the GPU's Vulkan driver (or on lavapipe where there is none).
set -euo pipefail
cd "$(dirname "$0")/.."
MODE="${1:-}"
DIR="${2:-gpu-check}"
TARGET="${CARGO_TARGET_DIR:-target}"

case "$MODE" in
  build)
    mkdir -p "$DIR"
    cargo build --release --features wgpu --example bench
    cp "$TARGET/release/examples/bench" "$DIR/bench"
    # the test binary's path is in cargo's JSON messages
    bin=$(cargo test --features wgpu --test wgpu_parity --no-run --message-format=json \
      | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "wgpu_parity":
        print(m["executable"])' | tail -n 1)
    cp "$bin" "$DIR/wgpu_parity"
    echo "built $DIR/{bench,wgpu_parity}; carry $DIR and tests/fixtures to the GPU machine" >&2
    ;;
  run)
    [[ -x "$DIR/bench" && -x "$DIR/wgpu_parity" ]] || { echo "error: run '$0 build $DIR' first" >&2; exit 1; }
    OUT="$DIR/results"
    mkdir -p "$OUT"
    {
      echo "date: $(date -u +%FT%TZ)"
      echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
      if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
      fi
      if command -v vulkaninfo >/dev/null; then vulkaninfo --summary 2>/dev/null | grep -E 'deviceName|driverInfo' || true; fi
    } | tee "$OUT/device.txt"
    # the tests read tests/fixtures of this checkout
    status=0
    BURN_ENGRAM_ROOT="$PWD" "$DIR/wgpu_parity" --test-threads 1 --nocapture 2>&1 | tee "$OUT/wgpu_parity.log" || status=1
    "$DIR/bench" --device wgpu --quick --out "$OUT/bench.json" --only copy,gather,engram,step \
      2>&1 | tail -n 1 >/dev/null || status=1
    echo "results in $OUT (status $status)" >&2
    exit "$status"
    ;;
  *)
    echo "usage: $0 build|run [DIR]" >&2
    exit 2
    ;;
esac
