#!/usr/bin/env bash
# The JVM connector (spark/) against real Apache Spark (PyPI pyspark's jars and spark-submit):
# ai.eddy.spark.ConnectorCheck (connector_check in lib/spark-jar.sh) submitted to a
# local-cluster master, in local mode, with dynamic allocation (refused), and to a standalone
# master and worker started here, all on 127.0.0.1. Needs the binaries of target/debug (run after
# `cargo build --workspace --bins`), Java 17+ and Maven.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=lib/spark-venv.sh
. scripts/lib/spark-venv.sh
ensure_spark_venv
# shellcheck source=lib/spark-jar.sh
. scripts/lib/spark-jar.sh
ensure_spark_jar

SPARK_HOME="$(spark_home)"
export SPARK_HOME SPARK_LOCAL_IP=127.0.0.1
LOGS=target/spark-jvm/logs
mkdir -p "$LOGS"

connector_check local-cluster "local-cluster[2,1,1024]"
# Local mode: the driver is the only executor, the workers run beside it.
connector_check local "local[2]" --conf spark.eddy.nodes=2
# Dynamic allocation is refused unless allowed.
EDDY_CHECK_MODE=dynamic-allocation connector_check dynamic-allocation "local-cluster[2,1,1024]" \
  --conf spark.dynamicAllocation.enabled=true --conf spark.dynamicAllocation.shuffleTracking.enabled=true

# A standalone master with one worker of 2 cores: two executors of one core each.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
MASTER_PORT=27077
for _ in $(seq 1 50); do
  port_free "$MASTER_PORT" && break
  MASTER_PORT=$((MASTER_PORT + 1))
done
PIDS=()
stop_standalone() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_standalone EXIT
"$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.master.Master --host 127.0.0.1 --port "$MASTER_PORT" --webui-port 0 \
  >"$LOGS/master.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 300); do
  port_free "$MASTER_PORT" || break
  sleep 0.1
done
SPARK_WORKER_DIR="$PWD/$LOGS/standalone-work" "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.worker.Worker \
  --host 127.0.0.1 --cores 2 --memory 3g --webui-port 0 "spark://127.0.0.1:$MASTER_PORT" >"$LOGS/worker.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 300); do
  grep -q "Successfully registered with master" "$LOGS/worker.log" && break
  sleep 0.1
done
grep -q "Successfully registered with master" "$LOGS/worker.log" || { echo "the standalone worker did not register (see $LOGS/worker.log)" >&2; exit 1; }
connector_check standalone "spark://127.0.0.1:$MASTER_PORT" --conf spark.cores.max=2 --conf spark.executor.memory=1g
