#!/usr/bin/env bash
# The Spark integration's tests against real Apache Spark (PyPI pyspark) on 127.0.0.1.
# Sets up what they need on a fresh machine: a virtualenv under target/ with pyspark and the
# eddy wheel (built from python/ with the binaries of target/debug: run after
# `cargo build --workspace --bins`), and checks for Java 17+ (Spark 4 needs it).
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=lib/spark-venv.sh
. scripts/lib/spark-venv.sh
ensure_spark_venv
# shellcheck source=lib/wheel.sh
. scripts/lib/wheel.sh
driver_venv_over "$SPARK_VENV" target/spark-driver-venv
# eddy and its binaries come from the wheel (EDDY_WHEEL_BINARIES picks the binaries it packs;
# EDDY_BIN_DIR is ignored here); test-only binaries (eddy-test-hadoop) from EDDY_TEST_BIN_DIR.
unset EDDY_BIN_DIR PYTHONPATH
export EDDY_EXECUTOR_PYTHON="$PWD/$SPARK_VENV/bin/python"
export EDDY_TEST_BIN_DIR="${EDDY_TEST_BIN_DIR:-$PWD/target/debug}"
export SPARK_LOCAL_IP=127.0.0.1
echo "== Spark integration tests (pyspark $PYSPARK_VERSION, $(java -version 2>&1 | head -1))"
# The JVM connector's jar: the conversion tests run a second time with it on Spark's classpath
# (EddyContext then converts in the executors' JVMs), so that both paths pass them.
# shellcheck source=lib/spark-jar.sh
. scripts/lib/spark-jar.sh
if [[ -z "${EDDY_SPARK_JAR:-}" && $# -eq 0 ]]; then
  ensure_spark_jar
  JAR_FOR_SECOND_RUN="$PWD/$SPARK_JAR"
fi
# From python/tests, so that `import eddy` finds the installed wheel, not python/eddy.
cd python/tests
# Arguments pick tests (test_spark.LostExecutor); none runs them all. EDDY_SPARK_JAR, when set,
# puts the connector's jar on the classpath of the tests' Spark sessions.
if (($#)); then
  ../../target/spark-driver-venv/bin/python -W ignore::ResourceWarning -m unittest -v "$@"
else
  ../../target/spark-driver-venv/bin/python -W ignore::ResourceWarning -m unittest discover -s . -t . -v
  if [[ -n "${JAR_FOR_SECOND_RUN:-}" ]]; then
    echo "== the same conversion tests with the JVM connector on Spark's classpath ($JAR_FOR_SECOND_RUN)"
    EDDY_SPARK_JAR="$JAR_FOR_SECOND_RUN" ../../target/spark-driver-venv/bin/python -W ignore::ResourceWarning -m unittest -v test_spark_local test_spark
  fi
fi
