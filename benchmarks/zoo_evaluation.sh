#!/usr/bin/env bash
# Reproduces the README's "Benchmark results": the bias evaluation of the shipped zoo.
# Usage: bash benchmarks/zoo_evaluation.sh MNIST.npz OUT_DIR [PER_DIGIT] [BIASED] [EVALUATE OPTIONS...]
# EVALUATE OPTIONS go to every `gsal benchmark evaluate`, e.g. `--target 0 --iterations 100` for
# grid saliency in the paper's formulation (its tuning space then is the paper's: lam x learning rate).
# Every method (grid saliency, the gradient methods, occlusion, RISE) is first tuned on held-out
# samples (--tune: test_seed 4242, the same six-candidate budget for each), then evaluated on the
# test split. A model whose report is already in OUT_DIR is not evaluated again (delete it to redo).
set -euo pipefail
mnist=${1:?MNIST.npz in Keras layout}; out=${2:?output folder}; per_digit=${3:-10}; biased=${4:-60}
shift $(( $# < 4 ? $# : 4 ))
for s in unbiased weak strong; do
  [ -f "$out/data/$s/card.json" ] || gsal benchmark generate --config configs/benchmark/$s.toml --mnist "$mnist" --n-train 0 --n-test 2000 --out "$out/data/$s"
done
for backbone in mobilenetv2 xception; do
  for s in strong weak; do
    [ -f "$out/reports/$backbone-$s/report.json" ] && continue
    gsal benchmark evaluate --model tmnist-$backbone-$s --data "$out/data/$s" --unbiased-data "$out/data/unbiased" \
      --out "$out/reports/$backbone-$s" --per-digit "$per_digit" --biased "$biased" --tune "$@"
  done
done
python benchmarks/collect_reports.py "$out/reports"
