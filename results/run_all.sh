#!/usr/bin/env bash
# Reproduce every report in results/ (CPU; see each report for its wall time).
# Reports are generated from the runs' metrics.json by `matbackprop report`, never typed.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
RUNS=${RUNS:-runs}

# 1. The embedded main job: texture mosaics
$BIN/matbackprop demo --out "$RUNS/demo"
$BIN/matbackprop report "$RUNS/demo/metrics.json" --output results/texture_mosaics.md \
  --title "DeepNCuts on texture mosaics (matbackprop demo)"

# 2. BSDS500: train on train, evaluate on val
$BIN/matbackprop train ncuts --config configs/ncuts_bsds.toml --out "$RUNS"
$BIN/matbackprop eval ncuts --config configs/ncuts_bsds.toml \
  --checkpoint "$RUNS/ncuts_bsds/last.pt" --split val --out "$RUNS/ncuts_bsds/eval_val"
$BIN/matbackprop report "$RUNS/ncuts_bsds/eval_val/metrics.json" --output results/bsds500_val.md \
  --title "Normalized cuts on BSDS500 val"

# 3. coco-mini: train on train2017, evaluate on val2017
$BIN/matbackprop train o2p --config configs/o2p_coco.toml --out "$RUNS"
$BIN/matbackprop eval o2p --config configs/o2p_coco.toml \
  --checkpoint "$RUNS/o2p_coco" --split val2017 --out "$RUNS/o2p_coco/eval_val2017"
$BIN/matbackprop report "$RUNS/o2p_coco/eval_val2017/metrics.json" \
  --output results/coco_mini_val.md --title "Region classification on coco-mini val2017"
