#!/usr/bin/env bash
# The Spark integration's tests against real Apache Spark (PyPI pyspark) on 127.0.0.1.
# Sets up what they need on a fresh machine: a virtualenv under target/ with pyspark, and
# checks for Java 17+ (Spark 4 needs it). Expects the binaries in target/debug (run after
# `cargo build --workspace --bins`), or EDDY_BIN_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=lib/spark-venv.sh
. scripts/lib/spark-venv.sh
ensure_spark_venv
venv=$SPARK_VENV
export EDDY_BIN_DIR="${EDDY_BIN_DIR:-$PWD/target/debug}"
export SPARK_LOCAL_IP=127.0.0.1
# No PYTHONPATH: the tests import eddy from python/ (the working directory), and executors must
# run without it installed, as on a real cluster.
echo "== Spark integration tests (pyspark $PYSPARK_VERSION, $(java -version 2>&1 | head -1))"
cd python
"../$venv/bin/python" -W ignore::ResourceWarning -m unittest discover -s tests -t . -v
