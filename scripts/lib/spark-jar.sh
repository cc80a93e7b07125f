# shellcheck shell=bash
# ensure_spark_jar: the JVM connector (spark/, a Maven module) built into
# target/spark-jvm/eddy-spark.jar, with its checks in eddy-spark-tests.jar. Maven resolves
# Spark's jars (compile-time only) and its plugins from Maven Central into target/m2, not ~/.m2.
# Built again when a source or the POM changed.
SPARK_JAR=target/spark-jvm/eddy-spark.jar
SPARK_TESTS_JAR=target/spark-jvm/eddy-spark-tests.jar
ensure_spark_jar() {
  command -v mvn >/dev/null 2>&1 || { echo "mvn (Maven) is not installed: apt-get install -y maven" >&2; return 1; }
  local stamp
  stamp="$(find spark/pom.xml spark/src -type f -print0 | sort -z | xargs -0 cat | sha256sum | cut -c1-16)"
  if [[ -f "$SPARK_JAR" && -f "$SPARK_TESTS_JAR" && "$(cat target/spark-jvm/.stamp 2>/dev/null)" == "$stamp" ]]; then
    return
  fi
  echo "== building the Spark connector (spark/, Maven)" >&2
  mkdir -p target/spark-jvm
  if ! mvn -B -q -Dstyle.color=never -Dmaven.repo.local="$PWD/target/m2" -f spark/pom.xml package >target/spark-jvm/maven.log 2>&1; then
    grep -E 'ERROR' target/spark-jvm/maven.log | head -20 >&2
    echo "Maven could not build the Spark connector (see target/spark-jvm/maven.log)" >&2
    return 1
  fi
  echo "$stamp" >target/spark-jvm/.stamp
}

# connector_check NAME MASTER [SPARK_SUBMIT_ARGS...]: ai.eddy.spark.ConnectorCheck by
# $SPARK_HOME/bin/spark-submit on MASTER with EDDY_CHECK_ROWS rows (default 1,000,000), an
# executor killed in the middle of a write included, the driver on 127.0.0.1 and the binaries
# of EDDY_TEST_BIN_DIR (default target/debug). The checks' lines are shown; Spark's whole log
# stays in target/spark-jvm/logs/NAME.log. Fails unless every check passed.
connector_check() {
  local name="$1" master="$2" rows="${EDDY_CHECK_ROWS:-1000000}" log="target/spark-jvm/logs/$1.log"
  shift 2
  mkdir -p target/spark-jvm/logs
  echo "-- ConnectorCheck on $master ($rows rows)"
  if ! EDDY_CHECK_CSV="${EDDY_CHECK_CSV:-$PWD/data/sample.csv}" timeout 900 "$SPARK_HOME/bin/spark-submit" --master "$master" \
    --conf spark.driver.host=127.0.0.1 --conf spark.driver.bindAddress=127.0.0.1 \
    --conf spark.ui.enabled=false --conf spark.eddy.binDir="${EDDY_TEST_BIN_DIR:-$PWD/target/debug}" \
    --conf spark.executor.cores=1 --conf spark.task.cpus=1 "$@" \
    --jars "$SPARK_JAR" --class ai.eddy.spark.ConnectorCheck "$SPARK_TESTS_JAR" "$rows" --kill-executor \
    >"$log" 2>&1; then
    grep -E '^(ok|cloud|missing|extra) |FAILED|EddyException|Exception in thread' "$log" | cut -c1-400 >&2 || true
    echo "ConnectorCheck failed on $master (whole log: $log)" >&2
    return 1
  fi
  grep -E '^ok |^ALL ' "$log" | cut -c1-200
  grep -q '^ALL .* CHECKS PASSED' "$log"
}
