#!/usr/bin/env bash
# recloop vs DuckDB, whole processes, on the same logs written by DuckDB. OPTIONAL: needs a
# Python venv with duckdb outside the repository; not run by CI, not a dependency of recloop.
#
#   python3 -m venv /tmp/duck && /tmp/duck/bin/pip install duckdb
#   crates/recloop-logs/scripts/duckdb_side_by_side.sh [DATA_DIR] [EVENTS] [UNITS] [RUNS]
#
# Writes DATA_DIR (default /tmp/rl-data) once with DuckDB: parquet/ (one file per table, DuckDB's
# default row groups and compression, plain VARCHAR strings), csv/ and daily/ (events in 14
# hive partitions events/day=N/), then times `recloop stats aggregate DIR --mean click` against
# `python -c` + duckdb computing the same per-arm n, Σy, Σy² by SQL (medians of RUNS runs,
# at all cores and at one thread) and checks that the numbers are identical bit for bit.
# Measure on an idle machine.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
data="${1:-/tmp/rl-data}"
events="${2:-10000000}"
units="${3:-100000}"
runs="${4:-5}"
py="${DUCK_PYTHON:-/tmp/duck/bin/python}"
if ! "$py" -c 'import duckdb' 2>/dev/null; then
  echo "needs a Python with duckdb: python3 -m venv /tmp/duck && /tmp/duck/bin/pip install duckdb" >&2
  exit 2
fi
if [ ! -f "$data/parquet/events.parquet" ]; then
  "$py" "$here/duckdb_side_by_side.py" gen "$data" "$events" "$units"
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
lock=(); command -v flock >/dev/null && lock=(flock /tmp/recloop-build.lock)
(cd "$root" && "${lock[@]}" cargo build --release -p recloop-cli)
"$py" "$here/duckdb_side_by_side.py" run "$data" "$CARGO_TARGET_DIR/release/recloop" "$runs"
