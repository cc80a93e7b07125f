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
