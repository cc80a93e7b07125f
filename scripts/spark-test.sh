#!/usr/bin/env bash
# The Spark integration's tests against real Apache Spark (PyPI pyspark) on 127.0.0.1.
# Sets up what they need on a fresh machine: a virtualenv under target/ with pyspark, and
# checks for Java 17+ (Spark 4 needs it). Expects the binaries in target/debug (run after
# `cargo build --workspace --bins`), or EDDY_BIN_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

PYSPARK_VERSION=4.0.1
# mapInArrow and the Flight client need pyarrow; pyspark's sql extra brings pandas and numpy.
PYTHON_PACKAGES="pyspark[sql]==$PYSPARK_VERSION pyarrow==26.0.1 pandas==3.1.1 numpy==2.4.6"
if ! command -v java >/dev/null 2>&1; then
  echo "java is not installed: Spark needs Java 17 or newer (e.g. apt-get install openjdk-17-jre-headless)" >&2
  exit 1
fi
venv=target/spark-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import pyspark, pyarrow.flight, sys; sys.exit(pyspark.__version__ != '$PYSPARK_VERSION')" 2>/dev/null; then
  echo "== installing $PYTHON_PACKAGES into $venv (about 550 MB, once)"
  python3 -m venv "$venv"
  # shellcheck disable=SC2086
  "$venv/bin/pip" install --quiet $PYTHON_PACKAGES
fi
export EDDY_BIN_DIR="${EDDY_BIN_DIR:-$PWD/target/debug}"
export SPARK_LOCAL_IP=127.0.0.1
# No PYTHONPATH: the tests import eddy from python/ (the working directory), and executors must
# run without it installed, as on a real cluster.
echo "== Spark integration tests (pyspark $PYSPARK_VERSION, $(java -version 2>&1 | head -1))"
cd python
"../$venv/bin/python" -W ignore::ResourceWarning -m unittest discover -s tests -t . -v
