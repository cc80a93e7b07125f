#!/usr/bin/env bash
# Checks scripts/hadoop-cluster.sh with Hadoop's own clients: starts the process cluster, puts a
# 3 MiB file in 1 MiB blocks as an ordinary user, reads it back, checks with fsck that every
# block has replicas on both DataNodes (127.0.0.2 and 127.0.0.3), lists the NodeManagers, runs
# the distributed shell (`true` in two containers) and checks it SUCCEEDED, then stops the
# cluster and checks that no process of it is left.
#
#   scripts/hadoop-cluster-smoke.sh                      # HADOOP_VERSION=3.3.6 ... for another
set -euo pipefail
cd "$(dirname "$0")/.."
cluster=scripts/hadoop-cluster.sh
work="$(mktemp -d)"
trap '"$cluster" stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

"$cluster" start >"$work/env"
eval "$(cat "$work/env")"
echo "== cluster up: HADOOP_CONF_DIR=$HADOOP_CONF_DIR"

head -c 3145728 /dev/urandom >"$work/data.bin"
HADOOP_USER_NAME=root "$cluster" hdfs -mkdir -p /user/someuser
HADOOP_USER_NAME=root "$cluster" hdfs -chown someuser /user/someuser
HADOOP_USER_NAME=someuser "$cluster" hdfs -D dfs.blocksize=1048576 -put "$work/data.bin" /user/someuser/data.bin
HADOOP_USER_NAME=someuser "$cluster" hdfs -cat /user/someuser/data.bin | cmp - "$work/data.bin" \
  || fail "the file read back differs"
echo "== put and cat: 3 MiB round trip OK"

HADOOP_USER_NAME=someuser "$cluster" hdfs fsck /user/someuser/data.bin -files -blocks -locations >"$work/fsck" 2>&1
grep -q 'Status: HEALTHY' "$work/fsck" || fail "fsck: $(cat "$work/fsck")"
blocks="$(grep -c 'len=1048576' "$work/fsck" || true)"
on2="$(grep -c '127\.0\.0\.2:' "$work/fsck" || true)"
on3="$(grep -c '127\.0\.0\.3:' "$work/fsck" || true)"
[[ "$blocks" == 3 && "$on2" == 3 && "$on3" == 3 ]] \
  || fail "expected 3 blocks, each on 127.0.0.2 and 127.0.0.3: $(cat "$work/fsck")"
echo "== fsck: 3 blocks, replicas on 127.0.0.2 and 127.0.0.3"

"$cluster" yarn node -list >"$work/nodes" 2>&1
if ! grep -q '127.0.0.2:.*RUNNING' "$work/nodes" || ! grep -q '127.0.0.3:.*RUNNING' "$work/nodes"; then
  fail "yarn node -list: $(cat "$work/nodes")"
fi
echo "== yarn node -list: 127.0.0.2 and 127.0.0.3 RUNNING"

ds_jar="$(ls "$HADOOP_CLUSTER_LIB"/hadoop-yarn-applications-distributedshell-*.jar)"
HADOOP_USER_NAME=someuser timeout 300 "$cluster" class \
  org.apache.hadoop.yarn.applications.distributedshell.Client -jar "$ds_jar" \
  -shell_command true -num_containers 2 -container_memory 128 -master_memory 256 \
  -timeout 240000 >"$work/ds" 2>&1 || fail "distributed shell: $(tail -20 "$work/ds")"
app="$("$cluster" yarn application -list -appStates ALL 2>/dev/null | grep -o 'application_[0-9_]*' | head -1)"
"$cluster" yarn application -status "$app" >"$work/status" 2>&1
grep -q 'Final-State : SUCCEEDED' "$work/status" || fail "$app: $(cat "$work/status")"
grep -q 'User : someuser' "$work/status" || fail "$app ran as: $(grep User "$work/status")"
echo "== distributed shell $app SUCCEEDED as someuser"

"$cluster" stop
left="$(pgrep -af -- "$PWD/target/hadoop/" || true)"
[[ -z "$left" ]] || fail "processes left after stop: $left"
echo "== stopped, nothing left"
echo "hadoop-cluster smoke: 5 passed, 0 failed"
