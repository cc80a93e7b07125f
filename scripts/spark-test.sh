#!/usr/bin/env bash
# The Spark integration's tests against real Apache Spark (PyPI pyspark) on 127.0.0.1.
# Sets up what they need on a fresh machine: a virtualenv under target/ with pyspark, and
# checks for Java 17+ (Spark 4 needs it). Expects the binaries in target/debug (run after
# `cargo build --workspace --bins`), or EDDY_BIN_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

PYSPARK_VERSION=4.0.1
if ! command -v java >/dev/null 2>&1; then
  echo "java is not installed: Spark needs Java 17 or newer (e.g. apt-get install openjdk-17-jre-headless)" >&2
  exit 1
fi
venv=target/spark-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import pyspark, sys; sys.exit(pyspark.__version__ != '$PYSPARK_VERSION')" 2>/dev/null; then
  echo "== installing pyspark $PYSPARK_VERSION into $venv (about 430 MB, once)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "pyspark==$PYSPARK_VERSION"
fi
export EDDY_BIN_DIR="${EDDY_BIN_DIR:-$PWD/target/debug}"
export SPARK_LOCAL_IP=127.0.0.1
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
echo "== Spark integration tests (pyspark $PYSPARK_VERSION, $(java -version 2>&1 | head -1))"
cd python
"../$venv/bin/python" -W ignore::ResourceWarning -m unittest discover -s tests -t . -v
