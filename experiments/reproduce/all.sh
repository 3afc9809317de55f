#!/usr/bin/env bash
# Moved to fedmeta/experiments/reproduce/all.sh; kept for old commands.
exec bash "$(dirname "$0")/../../fedmeta/experiments/reproduce/all.sh" "$@"
