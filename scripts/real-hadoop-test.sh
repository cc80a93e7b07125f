#!/usr/bin/env bash
# Runs Eddy's end-to-end tests against real Apache Hadoop daemons: starts the process cluster
# of scripts/hadoop-cluster.sh once (NameNode, DataNodes on 127.0.0.2 and 127.0.0.3,
# ResourceManager, NodeManagers on 127.0.0.2 and 127.0.0.3), runs tests/tests/real_hadoop.rs
# one at a time, then `spark-submit --master yarn` in client and cluster deploy mode
# (python/tests/test_spark_submit.py, SparkSubmitToRealYarn), all with EDDY_REAL_HADOOP_CONF set
# to its HADOOP_CONF_DIR, and always stops the cluster, also on failure or Ctrl-C.
# Then, once per hadoop.rpc.protection (privacy, integrity, authentication), a Kerberized
# cluster (HADOOP_CLUSTER_SECURE=1: a KDC, keytabs, SASL data transfer protection) for
# tests/tests/real_hadoop_secure.rs, with MIT's kinit from Debian's krb5-user (scripts/lib/krb5.sh).
#
#   scripts/real-hadoop-test.sh                  # Hadoop 3.4.3
#   HADOOP_VERSION=3.3.6 scripts/real-hadoop-test.sh
#   scripts/real-hadoop-test.sh NAME_FILTER      # only the Rust tests whose name contains it
#   EDDY_REAL_HADOOP_SPARK=0 scripts/real-hadoop-test.sh   # without the Spark-on-YARN tests
#   EDDY_REAL_HADOOP_PROTECTIONS="privacy" scripts/real-hadoop-test.sh  # secure runs to make ("" for none)
#
# Needs Java 17 and Maven (Hadoop's jars come from Maven Central into ~/.m2), and the eddy
# binaries built (`cargo build --workspace --bins`; done here if missing), and PyPI's pyspark
# in target/spark-venv (installed here if missing). The cluster's ports start at
# HADOOP_CLUSTER_PORT_BASE (default 29000).
set -euo pipefail
cd "$(dirname "$0")/.."
cluster=scripts/hadoop-cluster.sh
env_file="$(mktemp)"
spark_log="$(mktemp)"
cleanup() {
  "$cluster" stop >/dev/null 2>&1 || true
  rm -f "$env_file" "$spark_log"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ ! -x target/debug/eddy-driver || ! -x target/debug/eddy-mapper ]]; then
  echo "== building eddy-driver and eddy-mapper"
  cargo build --locked -p eddy-driver -p eddy-mapper --bins
fi
echo "== starting a real Hadoop ${HADOOP_VERSION:-3.4.3} cluster (scripts/hadoop-cluster.sh)"
"$cluster" start >"$env_file"
# shellcheck disable=SC1090 # the exports the cluster script printed
source "$env_file"
echo "== real-cluster tests (HADOOP_CONF_DIR=$HADOOP_CONF_DIR)"
EDDY_REAL_HADOOP_CONF="$HADOOP_CONF_DIR" cargo test --locked -p eddy-tests --test real_hadoop -- --test-threads=1 "$@"
if [[ "${EDDY_REAL_HADOOP_SPARK:-1}" != 0 ]]; then
  echo "== Spark on the real YARN: spark-submit --master yarn, client and cluster deploy mode"
  # shellcheck source=lib/spark-venv.sh
  . scripts/lib/spark-venv.sh
  ensure_spark_venv
  # shellcheck source=lib/wheel.sh
  . scripts/lib/wheel.sh
  driver_venv_over "$SPARK_VENV" target/spark-driver-venv
  (
    # From python/tests: eddy and its binaries come from the installed wheel.
    cd python/tests
    env -u EDDY_BIN_DIR -u PYTHONPATH EDDY_REAL_HADOOP_CONF="$HADOOP_CONF_DIR" EDDY_EXECUTOR_PYTHON="$PWD/../../$SPARK_VENV/bin/python" \
      ../../target/spark-driver-venv/bin/python -W ignore::ResourceWarning -m unittest -v test_spark_submit.SparkSubmitToRealYarn 2>&1 \
      | tee "$spark_log"
  )
  # Skipped would mean the variable did not reach the tests: then nothing was checked.
  if grep -qE "^OK \(skipped=|\.\.\. skipped" "$spark_log"; then echo "the Spark-on-YARN tests were skipped" >&2; exit 1; fi

  echo "== the JVM connector on the real YARN: ConnectorCheck by spark-submit --master yarn, client deploy mode"
  # shellcheck source=lib/spark-jar.sh
  . scripts/lib/spark-jar.sh
  ensure_spark_jar
  # As the Python tests above: Spark's jars are on the NodeManagers' machine (this one), the
  # application (and the connector's jar) is staged on the real HDFS in sparkuser's home.
  (
    SPARK_HOME="$(spark_home)"
    unset EDDY_BIN_DIR PYTHONPATH
    export SPARK_HOME HADOOP_CONF_DIR SPARK_LOCAL_IP=127.0.0.1 HADOOP_USER_NAME=sparkuser EDDY_CHECK_ROWS=200000 EDDY_TEST_BIN_DIR="$PWD/target/debug"
    connector_check yarn-client yarn --deploy-mode client --num-executors 2 --executor-memory 1g \
      --conf "spark.yarn.jars=local:$SPARK_HOME/jars/*"
  )
fi
echo "== stopping the cluster"
"$cluster" stop

protections="${EDDY_REAL_HADOOP_PROTECTIONS-privacy integrity authentication}"
if [[ -n "$protections" ]]; then
  # shellcheck source=lib/krb5.sh
  . scripts/lib/krb5.sh
  EDDY_KRB5_TOOLS="$(ensure_krb5_user)"
  export EDDY_KRB5_TOOLS
fi
for protection in $protections; do
  echo "== a Kerberized cluster, hadoop.rpc.protection=$protection (scripts/hadoop-cluster.sh, HADOOP_CLUSTER_SECURE=1)"
  HADOOP_CLUSTER_SECURE=1 HADOOP_CLUSTER_RPC_PROTECTION="$protection" "$cluster" start >"$env_file"
  # shellcheck disable=SC1090 # the exports the cluster script printed (KRB5_CONFIG, the user's keytab)
  source "$env_file"
  EDDY_REAL_HADOOP_CONF="$HADOOP_CONF_DIR" cargo test --locked -p eddy-tests --test real_hadoop_secure -- --test-threads=1 "$@"
  "$cluster" stop
done
left="$(pgrep -af -- "$PWD/target/hadoop/" || true)"
[[ -z "$left" ]] || { echo "processes left after stop: $left" >&2; exit 1; }
echo "real Hadoop tests passed"
