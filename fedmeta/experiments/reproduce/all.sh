#!/usr/bin/env bash
# Runs every study's short version (or, with --full, the committed configs),
# one after another, and collects their tables in ROOT/tables.md.
# Usage: bash fedmeta/experiments/reproduce/all.sh [--full] [ROOT]
set -euo pipefail
cd "$(dirname "$0")/../../.."
MODE=short
if [[ "${1:-}" == --full ]]; then MODE=full; shift; fi
ROOT=${1:-/tmp/fedmeta_reproduce}
mkdir -p "$ROOT"
: > "$ROOT/tables.md"
for study in $(.venv/bin/python -c \
    'from fedmeta.experiments.reproduce import studies; print(*studies.STUDIES)'); do
  .venv/bin/python -m fedmeta.experiments.reproduce.reproduce --study="$study" \
    --full="$([[ $MODE == full ]] && echo true || echo false)" \
    --root_output_dir="$ROOT" > "$ROOT/$study.log" 2>&1
  cat "$ROOT/$study/$MODE/table.md" >> "$ROOT/tables.md"
  echo "$study: done ($ROOT/$study/$MODE/, log $ROOT/$study.log)"
done
