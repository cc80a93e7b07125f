# shellcheck shell=bash
# ensure_spark_venv: target/spark-venv with PyPI's pyspark (real Apache Spark, jars included)
# and what the Spark tests import, pinned; checks for the Java that Spark 4 needs.
# shellcheck source=venv.sh
. "$(dirname "${BASH_SOURCE[0]}")/venv.sh"
PYSPARK_VERSION=4.0.1
SPARK_VENV=target/spark-venv
# spark_home: where pyspark (Spark's jars and bin/spark-submit) is in the venv.
spark_home() {
  "$SPARK_VENV/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))'
}
ensure_spark_venv() {
  if ! command -v java >/dev/null 2>&1; then
    echo "java is not installed: Spark needs Java 17 or newer (e.g. apt-get install openjdk-17-jre-headless)" >&2
    return 1
  fi
  # mapInArrow and the Flight client need pyarrow; pyspark's sql extra brings pandas and numpy.
  ensure_venv "$SPARK_VENV" "pyspark[sql]==$PYSPARK_VERSION" pyarrow==26.0.1 pandas==3.1.1 numpy==2.4.6
}
