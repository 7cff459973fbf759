#!/usr/bin/env bash
# The validation stage end to end on a CPU-only machine (issue 13, item 4): two regularized-evolution searches
# on accuracy vs ZCU102 latency (the surrogate), their pooled front's 10 candidates + EfficientNet-B0 trained
# with the smoke scheme on a small real image set (Debian's Fashion-MNIST, 100 images per class, 32 px) and
# measured on this CPU (onnxruntime, 1 thread, 224 px), then the predicted-vs-measured report.
# This CPU is not a ZCU102 and Fashion-MNIST is not ImageNet: both comparisons are by ranking only.
#   usage: experiments/checks/validate_end_to_end.sh [WORKDIR]     (needs NASOPT_DATASET, dataset-fashion-mnist)
set -euo pipefail
W="${1:-/tmp/nasopt-e2e}"
mkdir -p "$W"
for s in 0 1; do
    [ -f "$W/runs/re$s/summary.json" ] || nasopt search problem=acc_zcu102_latency optimizer=re \
        budget.max_evals=300 seed=$s print_summary=false "hydra.run.dir=$W/runs/re$s"
done
[ -d "$W/fmnist/train" ] || python -m nasopt.validation.train.prepare fashion-mnist "$W/fmnist" --size 32 \
    --train-per-class 100 --val-per-class 50
time nasopt validate "$W/runs" --out "$W/validation" --n 10 \
    --measure cpu --measure-opt threads=1 --measure-opt repeats=20 \
    --train smoke --train-opt "data=$W/fmnist" --train-opt threads=1 \
    --compare latency_cpu=latency_zcu102
echo "report: $W/validation/report/report.md"
