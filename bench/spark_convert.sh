#!/usr/bin/env bash
# Spark <-> engine conversion, side by side in one run: Eddy's two data paths (PySpark
# mapInArrow + Flight, and the JVM connector's jar) with Spark's own rates
# (bench/spark_convert.py, pyspark 4.0.1), then Sparkling Water (bench/sparkling_water_convert.py,
# pyspark 3.5 and h2o-pysparkling-3.5 in a venv of their own under target/), all on
# local-cluster[2,1,1024] and the same cached DataFrame of random doubles.
#
#   bench/spark_convert.sh [RUNS] [ROWS] [SPARKLING_WATER_ROWS]
# Sparkling Water's H2O shares the 1 GB executor JVM with Spark's cache: at 5 M rows it ran out
# of memory here (bench/RESULTS.md), so it gets its own row count (default 2.5 M).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-3}" ROWS="${2:-5000000}" SW_ROWS="${3:-2500000}"

# shellcheck source=../scripts/lib/spark-venv.sh
. scripts/lib/spark-venv.sh
ensure_spark_venv
# shellcheck source=../scripts/lib/spark-jar.sh
. scripts/lib/spark-jar.sh
ensure_spark_jar
ensure_venv target/sw-venv pyspark==3.5.9 h2o-pysparkling-3.5==3.46.0.6.post1
cargo build --release --bins --locked >/dev/null

export SPARK_LOCAL_IP=127.0.0.1
echo "== Eddy (both paths) and Spark itself, $ROWS rows"
# The executors' Python workers need the venv's pyarrow.
EDDY_BIN_DIR=target/release EDDY_SPARK_JAR="$SPARK_JAR" PYTHONPATH=python PYSPARK_PYTHON="$PWD/$SPARK_VENV/bin/python" \
  "$SPARK_VENV/bin/python" bench/spark_convert.py "$RUNS" "$ROWS"
echo "== Sparkling Water, $SW_ROWS rows"
PYTHONPATH=bench PYSPARK_PYTHON="$PWD/target/sw-venv/bin/python" target/sw-venv/bin/python bench/sparkling_water_convert.py "$RUNS" "$SW_ROWS" 2>&1 | grep -v "^\s*$" | grep -iv "warn\|info" || true
