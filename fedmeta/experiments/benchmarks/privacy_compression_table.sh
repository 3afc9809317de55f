#!/usr/bin/env bash
# Accuracy vs epsilon (DP-FedAvg) and vs bits (compression) on digits:
# 100 Dirichlet(0.5) clients, 20 a round, 30 rounds. Prints a markdown table.
# Usage: bash fedmeta/experiments/benchmarks/privacy_compression_table.sh [OUT_ROOT]
set -euo pipefail
cd "$(dirname "$0")/../../.."
ROOT=${1:-/tmp/fedmeta_table}
rm -rf "$ROOT"
COMMON=(--task=digits --num_clients=100 --clients_per_round=20 --rounds=30
        --client_epochs=2 --client_batch_size=16 --client_learning_rate=0.1
        --eval_every=30 --root_output_dir="$ROOT")
run() {  # name, flags...
  local name=$1; shift
  .venv/bin/python -m fedmeta.experiments.run "${COMMON[@]}" --experiment_name="$name" \
    "$@" > /dev/null 2>&1
  .venv/bin/python - "$ROOT/$name/metrics.csv" "$name" "$*" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
last = rows[-1]
eps = last.get('privacy/epsilon') or 'inf (no DP)'
up = sum(int(r['bytes/client_to_server']) for r in rows)
print(f"| {sys.argv[3] or '(none)'} | {float(last['eval/sparse_categorical_accuracy']):.3f} "
      f"| {eps if isinstance(eps, str) else eps} | {up / 1e6:.2f} |")
PY
}
echo '| flags | test accuracy | epsilon (delta 1e-5) | MB client to server, 30 rounds |'
echo '|---|---|---|---|'
run base
for z in 0.3 0.5 1.0; do run dp_$z --dp_noise_multiplier=$z --dp_clip=1.0; done
for b in 8 4 2; do run bits_$b --compression_bits=$b; done
run bits_2_rot --compression_bits=2 --rotation
