#!/usr/bin/env bash
# A real Apache Hadoop cluster as plain background java processes on this machine, for tests:
# no Docker, no Hadoop distribution, only Hadoop's own jars from Maven Central
# (deploy/hadoop/cluster/pom.xml resolves them into target/hadoop/<version>/lib).
#
#   NameNode          127.0.0.1   rpc BASE+20, http BASE+70
#   DataNode dn1      127.0.0.2   data BASE+10, http BASE+75, ipc BASE+67
#   DataNode dn2      127.0.0.3   (same ports as dn1, on its own address)
#   ResourceManager   127.0.0.1   scheduler BASE+30, resource-tracker BASE+31, client BASE+32,
#                                 admin BASE+33, web BASE+88
#   NodeManager nm1   127.0.0.2   rpc BASE+40, localizer BASE+41, web BASE+42
#   NodeManager nm2   127.0.0.3   (same ports as nm1, on its own address)
#
# BASE is $HADOOP_CLUSTER_PORT_BASE (default 29000). Nothing binds outside 127.0.0.0/8.
# The default lies below Linux's ephemeral ports (32768-60999): there, any outgoing
# connection may hold a daemon's port when it starts (CI saw the ResourceManager fail so).
#
# Usage:
#   scripts/hadoop-cluster.sh start        resolve jars (once), write config, format, start all
#                                          daemons, wait until ready, print `export ...` lines
#   scripts/hadoop-cluster.sh stop         stop every daemon (TERM, then KILL) and their containers
#   scripts/hadoop-cluster.sh status       which daemons run
#   scripts/hadoop-cluster.sh env          the exports (HADOOP_CONF_DIR, fs.defaultFS, RM address)
#   scripts/hadoop-cluster.sh hdfs ARGS    FsShell (`hdfs dfs ARGS`); also `hdfs fsck ...`,
#                                          `hdfs dfsadmin ...`, `hdfs getconf ...`
#   scripts/hadoop-cluster.sh yarn ARGS    `yarn application|applicationattempt|container ...`
#                                          (ApplicationCLI), `yarn node ...` (NodeCLI),
#                                          `yarn rmadmin ...`
#   scripts/hadoop-cluster.sh class CLASS ARGS   any main class with the cluster's classpath
#                                          and configuration (e.g. the distributed shell client)
#
# Environment:
#   HADOOP_VERSION             default: the running cluster's, else 3.4.3 (3.3.6 works too)
#   HADOOP_CLUSTER_PORT_BASE   default 29000
#   HADOOP_CLUSTER_TIMEOUT     seconds to wait for readiness, default 120
#   HADOOP_USER_NAME           the user the hdfs/yarn client commands act as (simple auth)
#   HADOOP_CLUSTER_JAVA_OPTS   extra JVM options for every daemon and client command
#   HADOOP_CLUSTER_SECURE      1: a Kerberized cluster (at start; later commands follow the
#                              running cluster). A KDC (Hadoop's MiniKdc, dev.eddy.hadoop.TestKdc)
#                              on 127.0.0.1:BASE+1, realm EXAMPLE.COM, principals nn, dn, rm, nm
#                              and HTTP /localhost in target/hadoop/kdc/service.keytab and the
#                              user alice in alice.keytab; block access tokens, SASL data
#                              transfer protection and HTTPS for HDFS (self-signed, keytool)
#                              instead of privileged ports; HDFS permissions off. `env` then
#                              also prints KRB5_CONFIG and the user's principal and keytab.
#   HADOOP_CLUSTER_RPC_PROTECTION   hadoop.rpc.protection of the secure cluster: authentication
#                              (default), integrity or privacy; dfs.data.transfer.protection
#                              follows it (HADOOP_CLUSTER_DATA_PROTECTION to choose apart)
#   HADOOP_CLUSTER_TOKEN_RENEW_SECS  renewal interval of the secure cluster's HDFS and YARN
#                              delegation tokens (default 20, a day in Hadoop): a token not
#                              renewed within it expires, so tests see whether YARN renews
#
# The configuration is the docker-compose cluster's (deploy/hadoop/conf/*-site.xml): the files
# written to target/hadoop/conf (HADOOP_CONF_DIR) are those with only addresses and directories
# replaced (flat copies, for clients that do not follow XInclude); each daemon has its own
# directory (target/hadoop/conf/daemons/<name>) first on its classpath whose files XInclude the
# cluster's and then override the daemon's own addresses (Hadoop's Configuration reads
# properties in document order, so a property after the include wins).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# Default: the version of the running cluster, if any, else 3.4.3.
if [[ -z "${HADOOP_VERSION:-}" && -s "$ROOT/target/hadoop/run/version" ]]; then
  HADOOP_VERSION="$(cat "$ROOT/target/hadoop/run/version")"
fi
HADOOP_VERSION="${HADOOP_VERSION:-3.4.3}"
BASE="${HADOOP_CLUSTER_PORT_BASE:-29000}"
TIMEOUT="${HADOOP_CLUSTER_TIMEOUT:-120}"
HROOT="$ROOT/target/hadoop"
LIB="$HROOT/$HADOOP_VERSION/lib"
CONF="$HROOT/conf"
DATA="$HROOT/data"
LOGS="$HROOT/logs"
RUN="$HROOT/run"
SHARED_CONF="$ROOT/deploy/hadoop/conf"
POM="$ROOT/deploy/hadoop/cluster/pom.xml"
KDC_DIR="$HROOT/kdc"
TLS_DIR="$HROOT/tls"
REALM=EXAMPLE.COM
# Secure or not: chosen at start, then the running cluster's.
if [[ -z "${HADOOP_CLUSTER_SECURE:-}" && -f "$ROOT/target/hadoop/run/secure" ]]; then
  HADOOP_CLUSTER_SECURE="$(cat "$ROOT/target/hadoop/run/secure")"
fi
SECURE="${HADOOP_CLUSTER_SECURE:-0}"
RPC_PROTECTION="${HADOOP_CLUSTER_RPC_PROTECTION:-authentication}"
DATA_PROTECTION="${HADOOP_CLUSTER_DATA_PROTECTION:-$RPC_PROTECTION}"
TOKEN_RENEW_SECS="${HADOOP_CLUSTER_TOKEN_RENEW_SECS:-20}"

NN_HOST=127.0.0.1
KDC_PORT=$((BASE + 1))
RM_HOST=127.0.0.1
NN_RPC=$((BASE + 20))
NN_HTTP=$((BASE + 70))
NN_HTTPS=$((BASE + 71))
DN_XFER=$((BASE + 10))
DN_HTTP=$((BASE + 75))
DN_HTTPS=$((BASE + 76))
DN_IPC=$((BASE + 67))
RM_SCHED=$((BASE + 30))
RM_TRACKER=$((BASE + 31))
RM_CLIENT=$((BASE + 32))
RM_ADMIN=$((BASE + 33))
RM_WEB=$((BASE + 88))
RM_WEBS=$((BASE + 89))
NM_RPC=$((BASE + 40))
NM_LOC=$((BASE + 41))
NM_WEB=$((BASE + 42))
NM_WEBS=$((BASE + 43))
NM_COLLECTOR=$((BASE + 48))
NM_AMRM=$((BASE + 49))

# name:address of every daemon, in start order.
DAEMONS=("nn:$NN_HOST" dn1:127.0.0.2 dn2:127.0.0.3 "rm:$RM_HOST" nm1:127.0.0.2 nm2:127.0.0.3)

JAVA="${JAVA:-java}"
JAVA_HOME="${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v "$JAVA")")")")}"

# Java 17: Hadoop 3.3/3.4 reflect into JDK internals (the list Hadoop's own build uses to run
# its tests on Java 17, HADOOP-17177 and follow-ups).
JAVA17_OPTS=(
  -XX:+IgnoreUnrecognizedVMOptions
  --add-opens=java.base/java.io=ALL-UNNAMED
  --add-opens=java.base/java.lang=ALL-UNNAMED
  --add-opens=java.base/java.lang.reflect=ALL-UNNAMED
  --add-opens=java.base/java.math=ALL-UNNAMED
  --add-opens=java.base/java.net=ALL-UNNAMED
  --add-opens=java.base/java.nio=ALL-UNNAMED
  --add-opens=java.base/java.text=ALL-UNNAMED
  --add-opens=java.base/java.util=ALL-UNNAMED
  --add-opens=java.base/java.util.concurrent=ALL-UNNAMED
  --add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED
  --add-opens=java.base/java.util.regex=ALL-UNNAMED
  --add-opens=java.base/java.util.zip=ALL-UNNAMED
  --add-opens=java.base/sun.nio.ch=ALL-UNNAMED
  --add-opens=java.base/sun.nio.cs=ALL-UNNAMED
  --add-opens=java.base/sun.security.action=ALL-UNNAMED
  --add-opens=java.base/sun.security.util=ALL-UNNAMED
  --add-opens=java.base/sun.security.x509=ALL-UNNAMED
  --add-opens=java.base/sun.util.calendar=ALL-UNNAMED
  --add-opens=java.security.jgss/sun.security.krb5=ALL-UNNAMED
  --add-exports=java.base/sun.net.dns=ALL-UNNAMED
  --add-exports=java.base/sun.net.util=ALL-UNNAMED
)
# Measured: without any, the NameNode and DataNodes run, the ResourceManager and NodeManagers
# die starting their web apps (Guice's cglib needs java.lang's ClassLoader.defineClass);
# java.base/java.lang alone is enough for scripts/hadoop-cluster-smoke.sh. The rest covers code
# paths not exercised there.
[[ "${HADOOP_CLUSTER_NO_ADD_OPENS:-}" == 1 ]] && JAVA17_OPTS=()
# shellcheck disable=SC2206 # extra JVM options for daemons and clients, split on spaces
EXTRA_OPTS=(${HADOOP_CLUSTER_JAVA_OPTS:-})
COMMON_OPTS=(
  "${JAVA17_OPTS[@]}"
  "${EXTRA_OPTS[@]}"
  -Djava.net.preferIPv4Stack=true
  -Dhadoop.home.dir="$HROOT/$HADOOP_VERSION"
  -Dhadoop.log.dir="$LOGS"
  -Dyarn.log.dir="$LOGS"
)
[[ "$SECURE" == 1 ]] && COMMON_OPTS+=(-Djava.security.krb5.conf="$KDC_DIR/krb5.conf")

log() { echo "hadoop-cluster: $*" >&2; }
die() { log "$*"; exit 1; }

# --- jars ----------------------------------------------------------------------------------

# What the resolved jars were made from: a changed POM or helper class resolves them again.
jars_stamp() {
  cat "$POM" "$ROOT"/deploy/hadoop/cluster/src/main/java/dev/eddy/hadoop/*.java | sha256sum | cut -c1-16
}

resolve_jars() {
  local stamp
  stamp="$(jars_stamp)"
  if [[ "$(cat "$LIB/.complete" 2>/dev/null)" == "$stamp" ]]; then return; fi
  command -v mvn >/dev/null 2>&1 || die "mvn (Maven) is not installed: apt-get install -y maven"
  log "resolving Hadoop $HADOOP_VERSION jars from Maven Central into $LIB"
  local started=$SECONDS ds_version
  # The distributed shell (a smoke-test application) is on Maven Central for a few versions only.
  case "$HADOOP_VERSION" in
    3.1.* | 3.2.* | 3.3.*) ds_version=3.3.1 ;; # 3.3.5's POM parent is missing on Central
    *) ds_version=3.4.2 ;;
  esac
  rm -rf "$LIB"
  mkdir -p "$HROOT"
  mvn -B -q -Dstyle.color=never -f "$POM" package -Dhadoop.version="$HADOOP_VERSION" \
    -Ddistributedshell.version="$ds_version" >"$HROOT/maven-$HADOOP_VERSION.log" 2>&1 \
    || { grep -E 'ERROR' "$HROOT/maven-$HADOOP_VERSION.log" | head -5 >&2; die "Maven could not resolve Hadoop $HADOOP_VERSION (see $HROOT/maven-$HADOOP_VERSION.log)"; }
  [[ -f "$LIB/hadoop-common-$HADOOP_VERSION.jar" ]] || die "no hadoop-common jar in $LIB"
  echo "$stamp" >"$LIB/.complete"
  log "resolved in $((SECONDS - started)) s"
}

# --- configuration -------------------------------------------------------------------------

# site FILE INCLUDE [name value]...: a Hadoop site file that XIncludes INCLUDE (if not empty),
# then sets the given properties, which override the included ones.
site() {
  local file="$1" include="$2"
  shift 2
  {
    echo '<?xml version="1.0"?>'
    echo '<!-- Written by scripts/hadoop-cluster.sh: do not edit. -->'
    echo '<configuration xmlns:xi="http://www.w3.org/2001/XInclude">'
    [[ -n "$include" ]] && echo "  <xi:include href=\"file://$include\"/>"
    while (($#)); do
      echo "  <property><name>$1</name><value>$2</value></property>"
      shift 2
    done
    echo '</configuration>'
  } >"$file"
}

# flat_site FILE BASE [name value]...: a site file with BASE's properties (BASE is a file of
# deploy/hadoop/conf) and then the given ones, which replace BASE's of the same name. Flat, no
# XInclude: the files in HADOOP_CONF_DIR are read by clients other than Hadoop's too (Eddy's
# own configuration reader does not follow XInclude).
flat_site() {
  local file="$1" base="$2"
  shift 2
  python3 - "$file" "$base" "$@" <<'PY'
import sys
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

out, base, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
overrides = dict(zip(rest[0::2], rest[1::2]))
lines = ['<?xml version="1.0"?>',
         f'<!-- Written by scripts/hadoop-cluster.sh from {base}: do not edit. -->',
         '<configuration>',
         f'  <!-- From {base.rsplit("/", 1)[-1]} (shared with the docker-compose cluster). -->']
for prop in ET.parse(base).getroot().iter('property'):
    name = (prop.findtext('name') or '').strip()
    if name and name not in overrides:
        value = (prop.findtext('value') or '').strip()
        lines.append(f'  <property><name>{escape(name)}</name><value>{escape(value)}</value></property>')
lines.append('  <!-- The process cluster\'s addresses and directories. -->')
for name, value in overrides.items():
    lines.append(f'  <property><name>{escape(name)}</name><value>{escape(value)}</value></property>')
lines.append('</configuration>')
open(out, 'w').write('\n'.join(lines) + '\n')
PY
}

# The secure cluster's properties (empty arrays when it is not secure). Principals are written
# out (no _HOST): the daemons' addresses are IPs, whose reverse lookups differ by address. Each
# DataNode's is dn/<its address> (set per daemon below): Hadoop's IPC client binds a secure
# connection to the host of its principal when that is a local interface address, which
# "localhost" is and would fight BoundSocketFactory's bind to 127.0.0.2.
secure_properties() {
  CORE_SECURE=() HDFS_SECURE=() YARN_SECURE=()
  [[ "$SECURE" == 1 ]] || return 0
  [[ "$TOKEN_RENEW_SECS" =~ ^[1-9][0-9]*$ ]] || die "HADOOP_CLUSTER_TOKEN_RENEW_SECS must be a number of seconds, not '$TOKEN_RENEW_SECS'"
  local keytab="$KDC_DIR/service.keytab"
  CORE_SECURE=(
    hadoop.security.authentication kerberos
    hadoop.rpc.protection "$RPC_PROTECTION"
  )
  HDFS_SECURE=(
    dfs.block.access.token.enable true
    dfs.namenode.kerberos.principal "nn/localhost@$REALM"
    dfs.namenode.keytab.file "$keytab"
    dfs.datanode.kerberos.principal "dn/_HOST@$REALM"
    dfs.datanode.keytab.file "$keytab"
    dfs.web.authentication.kerberos.principal "HTTP/localhost@$REALM"
    dfs.web.authentication.kerberos.keytab "$keytab"
    dfs.data.transfer.protection "$DATA_PROTECTION"
    dfs.namenode.delegation.token.renew-interval "$((TOKEN_RENEW_SECS * 1000))"
    dfs.http.policy HTTPS_ONLY
    dfs.permissions.enabled false
  )
  YARN_SECURE=(
    yarn.resourcemanager.principal "rm/localhost@$REALM"
    yarn.resourcemanager.keytab "$keytab"
    yarn.nodemanager.principal "nm/localhost@$REALM"
    yarn.nodemanager.keytab "$keytab"
    yarn.resourcemanager.delegation.token.renew-interval "$((TOKEN_RENEW_SECS * 1000))"
  )
}

# A self-signed certificate for the HDFS web servers of the secure cluster (Hadoop requires
# HTTPS of a DataNode that uses SASL instead of privileged ports).
write_tls() {
  local pass=eddy-test
  mkdir -p "$TLS_DIR"
  rm -f "$TLS_DIR"/*.jks
  "$JAVA_HOME/bin/keytool" -genkeypair -noprompt -alias localhost -keyalg RSA -keysize 2048 \
    -validity 30 -dname CN=localhost -ext SAN=dns:localhost,ip:127.0.0.1,ip:127.0.0.2,ip:127.0.0.3 \
    -keystore "$TLS_DIR/keystore.jks" -storepass "$pass" -keypass "$pass" >/dev/null 2>&1 \
    || die "keytool could not make the test certificate"
  "$JAVA_HOME/bin/keytool" -exportcert -noprompt -alias localhost -keystore "$TLS_DIR/keystore.jks" \
    -storepass "$pass" -file "$TLS_DIR/localhost.crt" >/dev/null 2>&1
  "$JAVA_HOME/bin/keytool" -importcert -noprompt -alias localhost -file "$TLS_DIR/localhost.crt" \
    -keystore "$TLS_DIR/truststore.jks" -storepass "$pass" >/dev/null 2>&1
  site "$CONF/ssl-server.xml" "" \
    ssl.server.keystore.location "$TLS_DIR/keystore.jks" \
    ssl.server.keystore.password "$pass" \
    ssl.server.keystore.keypassword "$pass" \
    ssl.server.truststore.location "$TLS_DIR/truststore.jks" \
    ssl.server.truststore.password "$pass"
  site "$CONF/ssl-client.xml" "" \
    ssl.client.truststore.location "$TLS_DIR/truststore.jks" \
    ssl.client.truststore.password "$pass"
}

write_config() {
  mkdir -p "$CONF/daemons" "$DATA" "$LOGS" "$RUN" "$HROOT/tmp"
  local classpath="$CONF,$LIB/*"
  secure_properties
  [[ "$SECURE" == 1 ]] && write_tls

  flat_site "$CONF/core-site.xml" "$SHARED_CONF/core-site.xml" \
    fs.defaultFS "hdfs://$NN_HOST:$NN_RPC" \
    hadoop.tmp.dir "$HROOT/tmp/hadoop-\${user.name}" \
    ${CORE_SECURE[@]+"${CORE_SECURE[@]}"}

  flat_site "$CONF/hdfs-site.xml" "$SHARED_CONF/hdfs-site.xml" \
    dfs.namenode.rpc-address "$NN_HOST:$NN_RPC" \
    dfs.namenode.rpc-bind-host "$NN_HOST" \
    dfs.namenode.http-address "$NN_HOST:$NN_HTTP" \
    dfs.namenode.https-address "$NN_HOST:$NN_HTTPS" \
    dfs.namenode.secondary.http-address "$NN_HOST:0" \
    dfs.namenode.name.dir "file://$DATA/nn" \
    dfs.namenode.datanode.registration.ip-hostname-check false \
    dfs.namenode.heartbeat.recheck-interval 15000 \
    dfs.datanode.address "127.0.0.2:$DN_XFER" \
    dfs.datanode.http.address "127.0.0.2:$DN_HTTP" \
    dfs.datanode.https.address "127.0.0.2:$DN_HTTPS" \
    dfs.datanode.ipc.address "127.0.0.2:$DN_IPC" \
    dfs.datanode.data.dir "file://$DATA/dn1" \
    ${HDFS_SECURE[@]+"${HDFS_SECURE[@]}"}

  flat_site "$CONF/yarn-site.xml" "$SHARED_CONF/yarn-site.xml" \
    yarn.resourcemanager.hostname "$RM_HOST" \
    yarn.resourcemanager.address "$RM_HOST:$RM_CLIENT" \
    yarn.resourcemanager.scheduler.address "$RM_HOST:$RM_SCHED" \
    yarn.resourcemanager.resource-tracker.address "$RM_HOST:$RM_TRACKER" \
    yarn.resourcemanager.admin.address "$RM_HOST:$RM_ADMIN" \
    yarn.resourcemanager.webapp.address "$RM_HOST:$RM_WEB" \
    yarn.resourcemanager.webapp.https.address "$RM_HOST:$RM_WEBS" \
    yarn.nodemanager.hostname 127.0.0.2 \
    yarn.nodemanager.address "127.0.0.2:$NM_RPC" \
    yarn.nodemanager.localizer.address "127.0.0.2:$NM_LOC" \
    yarn.nodemanager.webapp.address "127.0.0.2:$NM_WEB" \
    yarn.nodemanager.webapp.https.address "127.0.0.2:$NM_WEBS" \
    yarn.nodemanager.collector-service.address "127.0.0.2:$NM_COLLECTOR" \
    yarn.nodemanager.amrmproxy.address "127.0.0.2:$NM_AMRM" \
    yarn.nodemanager.local-dirs "$DATA/nm1/local" \
    yarn.nodemanager.log-dirs "$LOGS/nm1-containers" \
    yarn.nodemanager.container-executor.class \
    org.apache.hadoop.yarn.server.nodemanager.DefaultContainerExecutor \
    yarn.nodemanager.disk-health-checker.max-disk-utilization-per-disk-percentage 99 \
    yarn.nodemanager.env-whitelist JAVA_HOME,HADOOP_CONF_DIR,PATH,LANG,TZ,SPARK_LOCAL_IP \
    yarn.application.classpath "$classpath" \
    yarn.resourcemanager.nodemanagers.heartbeat-interval-ms 500 \
    yarn.nodemanager.delete.debug-delay-sec 600 \
    yarn.log-aggregation-enable false \
    ${YARN_SECURE[@]+"${YARN_SECURE[@]}"}

  # The cluster's only queue (the image of the compose cluster ships its own file).
  site "$CONF/capacity-scheduler.xml" "" \
    yarn.scheduler.capacity.root.queues default \
    yarn.scheduler.capacity.root.default.capacity 100 \
    yarn.scheduler.capacity.root.default.maximum-capacity 100 \
    yarn.scheduler.capacity.maximum-am-resource-percent 0.5

  # The Maven artifact of hadoop-hdfs has no webapps/ (the distribution ships them as
  # directories). The NameNode and DataNode HTTP servers only need to find them on the
  # classpath: /jmx and the other servlets are registered in code, the HTML UI is left out.
  mkdir -p "$CONF/webapps/hdfs" "$CONF/webapps/datanode" "$CONF/webapps/secondary"

  cat >"$CONF/log4j.properties" <<'EOF'
# Written by scripts/hadoop-cluster.sh. Daemons log INFO, client commands WARN, to stderr.
hadoop.root.logger=INFO,console
log4j.rootLogger=${hadoop.root.logger}
log4j.appender.console=org.apache.log4j.ConsoleAppender
log4j.appender.console.target=System.err
log4j.appender.console.layout=org.apache.log4j.PatternLayout
log4j.appender.console.layout.ConversionPattern=%d{ISO8601} %p %c{2}: %m%n
log4j.logger.org.apache.hadoop.util.NativeCodeLoader=ERROR
EOF

  # Per daemon: files that include the cluster's and override the daemon's own keys. The
  # cluster files above already describe dn1 / nm1, so only dn2 / nm2 change addresses, but
  # every daemon gets its own directory (its data and log dirs, its socket bind address).
  local name host dir
  for entry in "${DAEMONS[@]}"; do
    name="${entry%%:*}" host="${entry#*:}" dir="$CONF/daemons/$name"
    mkdir -p "$dir"
    case "$name" in
      dn*)
        site "$dir/core-site.xml" "$CONF/core-site.xml" \
          hadoop.rpc.socket.factory.class.default dev.eddy.hadoop.BoundSocketFactory \
          eddy.socket.bind-address "$host"
        site "$dir/hdfs-site.xml" "$CONF/hdfs-site.xml" \
          dfs.datanode.hostname "$host" \
          dfs.datanode.address "$host:$DN_XFER" \
          dfs.datanode.http.address "$host:$DN_HTTP" \
          dfs.datanode.https.address "$host:$DN_HTTPS" \
          dfs.datanode.ipc.address "$host:$DN_IPC" \
          dfs.datanode.data.dir "file://$DATA/$name" \
          dfs.datanode.kerberos.principal "dn/$host@$REALM"
        site "$dir/yarn-site.xml" "$CONF/yarn-site.xml"
        ;;
      nm*)
        site "$dir/core-site.xml" "$CONF/core-site.xml"
        site "$dir/hdfs-site.xml" "$CONF/hdfs-site.xml"
        site "$dir/yarn-site.xml" "$CONF/yarn-site.xml" \
          yarn.nodemanager.hostname "$host" \
          yarn.nodemanager.address "$host:$NM_RPC" \
          yarn.nodemanager.localizer.address "$host:$NM_LOC" \
          yarn.nodemanager.webapp.address "$host:$NM_WEB" \
          yarn.nodemanager.webapp.https.address "$host:$NM_WEBS" \
          yarn.nodemanager.collector-service.address "$host:$NM_COLLECTOR" \
          yarn.nodemanager.amrmproxy.address "$host:$NM_AMRM" \
          yarn.nodemanager.local-dirs "$DATA/$name/local" \
          yarn.nodemanager.log-dirs "$LOGS/$name-containers"
        ;;
      *)
        site "$dir/core-site.xml" "$CONF/core-site.xml"
        site "$dir/hdfs-site.xml" "$CONF/hdfs-site.xml"
        site "$dir/yarn-site.xml" "$CONF/yarn-site.xml"
        ;;
    esac
  done
}

# --- processes -----------------------------------------------------------------------------

main_class() {
  case "$1" in
    nn) echo org.apache.hadoop.hdfs.server.namenode.NameNode ;;
    dn*) echo org.apache.hadoop.hdfs.server.datanode.DataNode ;;
    rm) echo org.apache.hadoop.yarn.server.resourcemanager.ResourceManager ;;
    nm*) echo org.apache.hadoop.yarn.server.nodemanager.NodeManager ;;
    kdc) echo dev.eddy.hadoop.TestKdc ;;
  esac
}

heap() {
  case "$1" in
    nn | rm | nm*) echo 512m ;;
    dn*) echo 256m ;;
  esac
}

pid_of() { # the pid of a running daemon, or nothing
  local f="$RUN/$1.pid" pid
  [[ -f "$f" ]] || return 0
  pid="$(cat "$f")"
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && grep -q "$(main_class "$1")" "/proc/$pid/cmdline" 2>/dev/null; then
    echo "$pid"
  fi
}

start_daemon() {
  local name="${1%%:*}" address="${1#*:}"
  local dir="$CONF/daemons/$name"
  local node_env=()
  # This machine's host name resolves to 127.0.0.1, not to each NodeManager's own address as
  # on a real cluster; Spark in a container looks its host's address up, finds loopback, warns
  # and takes a non-loopback interface instead. The NodeManager hands its address down
  # (SPARK_LOCAL_IP, in yarn.nodemanager.env-whitelist) so that containers stay on 127.0.0.0/8.
  [[ "$name" == nm* ]] && node_env=(SPARK_LOCAL_IP="$address")
  # Its own session (setsid), so that it outlives the calling shell and its signals; the pid
  # file is written by the process itself before it becomes java.
  # shellcheck disable=SC2016 # $$ and $@ are the inner shell's
  # HADOOP_USER_NAME is the clients' business: a daemon runs as the OS user (root here).
  env -u HADOOP_USER_NAME ${node_env[@]+"${node_env[@]}"} HADOOP_CONF_DIR="$CONF" JAVA_HOME="$JAVA_HOME" setsid bash -c 'echo $$ >"$0"; exec "$@"' \
    "$RUN/$name.pid" "$JAVA" -Xmx"$(heap "$name")" -XX:+UseSerialGC "${COMMON_OPTS[@]}" \
    -Dhadoop.log.file="$name.log" -Dproc_"$name" \
    -cp "$dir:$CONF:$LIB/*" "$(main_class "$name")" \
    </dev/null >"$LOGS/$name.log" 2>&1 &
  disown
  local deadline=$((SECONDS + 10))
  until [[ -s "$RUN/$name.pid" ]]; do
    ((SECONDS < deadline)) || die "$name did not start"
    sleep 0.1
  done
}

# The KDC of the secure cluster, before any daemon (they log in from their keytab at start).
start_kdc() {
  rm -rf "$KDC_DIR"
  mkdir -p "$KDC_DIR"
  # shellcheck disable=SC2016 # $$ and $@ are the inner shell's
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$RUN/kdc.pid" "$JAVA" -Xmx128m -XX:+UseSerialGC \
    "${JAVA17_OPTS[@]}" -cp "$LIB/*" dev.eddy.hadoop.TestKdc "$KDC_DIR" "$KDC_PORT" \
    "service.keytab=nn/localhost,dn/127.0.0.2,dn/127.0.0.3,rm/localhost,nm/localhost,HTTP/localhost" \
    "alice.keytab=alice" </dev/null >"$LOGS/kdc.log" 2>&1 &
  disown
  local deadline=$((SECONDS + 60))
  until [[ -f "$KDC_DIR/ready" ]]; do
    if ((SECONDS >= deadline)) || { [[ -s "$RUN/kdc.pid" ]] && [[ -z "$(pid_of kdc)" ]]; }; then
      tail -20 "$LOGS/kdc.log" >&2 || true
      die "the KDC did not start (see $LOGS/kdc.log)"
    fi
    sleep 0.2
  done
  log "KDC of realm $REALM on 127.0.0.1:$KDC_PORT"
}

# client CLASS ARGS...: a Hadoop client command against the cluster, in the foreground.
client() {
  exec "$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 "${COMMON_OPTS[@]}" \
    -Dhadoop.root.logger="${HADOOP_ROOT_LOGGER:-WARN,console}" \
    -cp "$CONF:$LIB/*" "$@"
}

# -k: the secure cluster's HDFS web servers have a self-signed certificate.
http_get() { curl -kfsS --max-time 5 "$1" 2>/dev/null || true; }

# The NameNode's web address: HTTPS only in the secure cluster.
namenode_web() {
  if [[ "$SECURE" == 1 ]]; then echo "https://$NN_HOST:$NN_HTTPS"; else echo "http://$NN_HOST:$NN_HTTP"; fi
}

# "<live datanodes> <safemode>" from the NameNode's JMX, e.g. "2 off".
hdfs_state() {
  local fs info live safe
  fs="$(http_get "$(namenode_web)/jmx?qry=Hadoop:service=NameNode,name=FSNamesystemState")"
  info="$(http_get "$(namenode_web)/jmx?qry=Hadoop:service=NameNode,name=NameNodeInfo")"
  live="$(grep -o '"NumLiveDataNodes" *: *[0-9]*' <<<"$fs" | grep -o '[0-9]*$' || true)"
  if [[ -z "$info" ]]; then
    safe=unknown
  elif grep -q '"Safemode" *: *""' <<<"$info"; then
    safe=off
  else
    safe=on
  fi
  echo "${live:-0} $safe"
}

# The number of RUNNING NodeManagers, from the ResourceManager's REST API.
yarn_active() {
  local m
  m="$(http_get "http://$RM_HOST:$RM_WEB/ws/v1/cluster/metrics")"
  grep -o '"activeNodes" *: *[0-9]*' <<<"$m" | grep -o '[0-9]*$' || echo 0
}

print_env() {
  echo "export HADOOP_CONF_DIR=$CONF"
  echo "export HADOOP_CLUSTER_FS=hdfs://$NN_HOST:$NN_RPC"
  echo "export HADOOP_CLUSTER_RM=$RM_HOST:$RM_CLIENT"
  echo "export HADOOP_CLUSTER_NAMENODE_WEB=$(namenode_web)"
  echo "export HADOOP_CLUSTER_RM_WEB=http://$RM_HOST:$RM_WEB"
  echo "export HADOOP_CLUSTER_LIB=$LIB"
  if [[ "$SECURE" == 1 ]]; then
    echo "export HADOOP_CLUSTER_SECURE=1"
    echo "export KRB5_CONFIG=$KDC_DIR/krb5.conf"
    echo "export HADOOP_CLUSTER_REALM=$REALM"
    echo "export HADOOP_CLUSTER_USER_PRINCIPAL=alice@$REALM"
    echo "export HADOOP_CLUSTER_USER_KEYTAB=$KDC_DIR/alice.keytab"
    echo "export HADOOP_CLUSTER_RPC_PROTECTION=$RPC_PROTECTION"
    echo "export HADOOP_CLUSTER_TOKEN_RENEW_SECS=$TOKEN_RENEW_SECS"
  fi
}

cmd_status() {
  local running=0 name pid
  for entry in "${DAEMONS[@]}"; do
    name="${entry%%:*}"
    pid="$(pid_of "$name")"
    if [[ -n "$pid" ]]; then
      running=$((running + 1))
      echo "$name ${entry#*:} running pid $pid rss $(awk '/VmRSS/ {print $2 " " $3}' "/proc/$pid/status")"
    else
      echo "$name ${entry#*:} stopped"
    fi
  done
  if [[ "$SECURE" == 1 ]]; then
    pid="$(pid_of kdc)"
    if [[ -n "$pid" ]]; then echo "kdc 127.0.0.1 running pid $pid"; else echo "kdc 127.0.0.1 stopped"; running=-1; fi
  fi
  ((running == ${#DAEMONS[@]}))
}

# Processes of YARN containers that a NodeManager started (DefaultContainerExecutor puts each
# in its own session, so they outlive a killed NodeManager): those working in our local dirs.
container_pids() {
  local p cwd
  for p in /proc/[0-9]*; do
    cwd="$(readlink "$p/cwd" 2>/dev/null || true)"
    [[ "$cwd" == "$DATA"/nm*/local/* ]] && echo "${p#/proc/}"
  done
  return 0
}

# stop_group NAME...: SIGTERM to each running daemon of the group, SIGKILL to those still
# alive after 20 s. Prints how many were running.
stop_group() {
  local name pid pids=() names=() deadline i
  for name in "$@"; do
    pid="$(pid_of "$name")"
    if [[ -n "$pid" ]]; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
      names+=("$name")
    fi
  done
  deadline=$((SECONDS + 20))
  for i in "${!pids[@]}"; do
    pid="${pids[$i]}"
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      log "${names[$i]} (pid $pid) did not stop in 20 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  echo "${#pids[@]}"
}

cmd_stop() {
  # NodeManagers first, while the ResourceManager still answers their unregistration (without
  # it a NodeManager retries for minutes on SIGTERM), then the ResourceManager and DataNodes,
  # the NameNode last.
  local stopped=0 n pid
  n="$(stop_group nm1 nm2)"
  stopped=$((stopped + n))
  n="$(stop_group rm dn1 dn2)"
  stopped=$((stopped + n))
  n="$(stop_group nn)"
  stopped=$((stopped + n))
  n="$(stop_group kdc)"
  stopped=$((stopped + n))
  for pid in $(container_pids); do
    log "killing leftover container process $pid"
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -f "$RUN"/*.pid "$RUN/version" "$RUN/secure"
  if ((stopped == 0)); then log "nothing was running"; else log "stopped $stopped daemons"; fi
}

cmd_start() {
  local name running=0
  for entry in "${DAEMONS[@]}"; do
    [[ -n "$(pid_of "${entry%%:*}")" ]] && running=$((running + 1))
  done
  if ((running == ${#DAEMONS[@]})); then
    log "already running"
    print_env
    return
  fi
  ((running == 0)) || die "partly running ($running daemons): run '$0 stop' first"

  command -v "$JAVA" >/dev/null 2>&1 || die "java is not installed: apt-get install -y openjdk-17-jdk-headless"
  command -v curl >/dev/null 2>&1 || die "curl is not installed: apt-get install -y curl"
  command -v python3 >/dev/null 2>&1 || die "python3 is not installed: apt-get install -y python3"
  resolve_jars
  local started=$SECONDS
  # A new cluster every time: fresh NameNode metadata, empty DataNodes and NodeManager dirs.
  rm -rf "$DATA" "$HROOT/tmp" "$LOGS" "$RUN"
  write_config
  echo "$HADOOP_VERSION" >"$RUN/version"
  echo "$SECURE" >"$RUN/secure"
  [[ "$SECURE" == 1 ]] && start_kdc

  log "formatting the NameNode"
  HADOOP_CONF_DIR="$CONF" "$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 "${COMMON_OPTS[@]}" \
    -cp "$CONF/daemons/nn:$CONF:$LIB/*" org.apache.hadoop.hdfs.server.namenode.NameNode \
    -format -force -nonInteractive -clusterid eddy-test >"$LOGS/format.log" 2>&1 \
    || { tail -30 "$LOGS/format.log" >&2; die "formatting the NameNode failed (see $LOGS/format.log)"; }

  for entry in "${DAEMONS[@]}"; do
    start_daemon "$entry"
  done

  log "waiting (at most $TIMEOUT s) for HDFS out of safe mode with 2 live DataNodes and 2 running NodeManagers"
  local deadline=$((SECONDS + TIMEOUT)) hdfs="0 unknown" nms=0
  while :; do
    for entry in "${DAEMONS[@]}"; do
      name="${entry%%:*}"
      if [[ -z "$(pid_of "$name")" ]]; then
        tail -40 "$LOGS/$name.log" >&2 || true
        cmd_stop >/dev/null
        die "$name exited during start-up (see $LOGS/$name.log)"
      fi
    done
    hdfs="$(hdfs_state)"
    nms="$(yarn_active)"
    [[ "$hdfs" == "2 off" && "$nms" == 2 ]] && break
    if ((SECONDS >= deadline)); then
      cmd_stop
      die "not ready after $TIMEOUT s (live DataNodes, safemode: $hdfs; running NodeManagers: $nms); logs in $LOGS"
    fi
    sleep 1
  done
  log "ready in $((SECONDS - started)) s"
  print_env
}

cmd="${1:-}"
shift || true
case "$cmd" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) print_env ;;
  hdfs)
    [[ -f "$LIB/.complete" ]] || die "no jars: run '$0 start' first"
    sub="${1:-}"
    case "$sub" in
      fsck) shift; client org.apache.hadoop.hdfs.tools.DFSck "$@" ;;
      dfsadmin) shift; client org.apache.hadoop.hdfs.tools.DFSAdmin "$@" ;;
      getconf) shift; client org.apache.hadoop.hdfs.tools.GetConf "$@" ;;
      dfs) shift; client org.apache.hadoop.fs.FsShell "$@" ;;
      *) client org.apache.hadoop.fs.FsShell "$@" ;;
    esac
    ;;
  yarn)
    [[ -f "$LIB/.complete" ]] || die "no jars: run '$0 start' first"
    sub="${1:-}"
    case "$sub" in
      application | applicationattempt | container) client org.apache.hadoop.yarn.client.cli.ApplicationCLI "$@" ;;
      node) shift; client org.apache.hadoop.yarn.client.cli.NodeCLI "$@" ;;
      rmadmin) shift; client org.apache.hadoop.yarn.client.cli.RMAdminCLI "$@" ;;
      *) die "yarn: one of application, applicationattempt, container, node, rmadmin" ;;
    esac
    ;;
  class)
    [[ -f "$LIB/.complete" ]] || die "no jars: run '$0 start' first"
    client "$@"
    ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
