#!/usr/bin/env bash
# Runs every speed benchmark, one after another on an otherwise idle
# machine; each prints one JSON line (collected in OUT, default
# /tmp/fedmeta_speed.jsonl). Usage: bash fedmeta/experiments/benchmarks/speed.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=${1:-/tmp/fedmeta_speed.jsonl}
: > "$OUT"
for benchmark in fed_avg_benchmark fed_maml_benchmark scaling_benchmark \
                 workers_benchmark pfedhn_benchmark; do
  .venv/bin/python -m "fedmeta.experiments.benchmarks.$benchmark" --repeats=7 \
    2>/dev/null | tail -n 1 | tee -a "$OUT"
done
# Smaller FedAvg clients: 50 x 50 images, batch 10.
.venv/bin/python -m fedmeta.experiments.benchmarks.fed_avg_benchmark --repeats=7 \
  --clients=50 --examples_per_client=50 --batch=10 \
  2>/dev/null | tail -n 1 | tee -a "$OUT"
# MAML's own Omniglot shape: 32 tasks of 5-way 1-shot, 1 query drawing, with
# what the round is made of (--decompose).
.venv/bin/python -m fedmeta.experiments.benchmarks.fed_maml_benchmark --repeats=7 \
  --clients=32 --shots=1 --query_shots=1 --norm=batch --decompose \
  2>/dev/null | tail -n 1 | tee -a "$OUT"
# 100 rounds of it through the runner, against 100 centralized steps.
.venv/bin/python -m fedmeta.experiments.benchmarks.maml_run_benchmark --repeats=3 \
  2>/dev/null | tail -n 1 | tee -a "$OUT"
