#!/usr/bin/env bash
# Moved to fedmeta/experiments/benchmarks/speed.sh; kept for old commands.
exec bash "$(dirname "$0")/../../fedmeta/experiments/benchmarks/speed.sh" "$@"
