#!/usr/bin/env bash
# Moved to fedmeta/experiments/benchmarks/privacy_compression_table.sh; kept for old commands.
exec bash "$(dirname "$0")/../../fedmeta/experiments/benchmarks/privacy_compression_table.sh" "$@"
