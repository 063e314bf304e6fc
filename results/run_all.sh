#!/usr/bin/env bash
# Reproduce the reports in results/ (CPU; each report gives its commands and wall times).
# Reports are generated from the runs' metrics.json by `matbackprop report`, never typed.
#   results/run_all.sh               # all three: demo, bsds, coco
#   results/run_all.sh bsds coco     # only some
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
RUNS=${RUNS:-runs}
WHICH=${*:-demo bsds coco}

for experiment in $WHICH; do
  case $experiment in
    demo)  # the embedded main job: texture mosaics
      $BIN/matbackprop demo --out "$RUNS/demo"
      $BIN/matbackprop report "$RUNS/demo/metrics.json" --output results/texture_mosaics.md \
        --title "DeepNCuts on texture mosaics (matbackprop demo)"
      ;;
    bsds)  # BSDS500: train on train, evaluate on val
      $BIN/matbackprop train ncuts --config configs/ncuts_bsds.toml --out "$RUNS"
      $BIN/matbackprop eval ncuts --config configs/ncuts_bsds.toml \
        --checkpoint "$RUNS/ncuts_bsds" --split val --out "$RUNS/ncuts_bsds/eval_val" \
        --save-segmentations "$RUNS/ncuts_bsds/segmentations_val"
      $BIN/matbackprop report "$RUNS/ncuts_bsds/eval_val/metrics.json" \
        --output results/bsds500_val.md --title "Normalized cuts on BSDS500 val"
      ;;
    coco)  # coco-mini: train on train2017, evaluate on val2017 (4 heads x 3 seeds, bootstrap CIs)
      $BIN/matbackprop train o2p --config configs/o2p_coco.toml --out "$RUNS"
      $BIN/matbackprop eval o2p --config configs/o2p_coco.toml \
        --checkpoint "$RUNS/o2p_coco" --split val2017 --out "$RUNS/o2p_coco/eval_val2017"
      $BIN/matbackprop report "$RUNS/o2p_coco/eval_val2017/metrics.json" \
        --output results/coco_mini_val.md --title "Region classification on coco-mini val2017"
      ;;
    *) echo "unknown experiment '$experiment' (choose from: demo bsds coco)" >&2; exit 2 ;;
  esac
done
