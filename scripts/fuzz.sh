#!/usr/bin/env bash
# cargo fuzz targets for every parser of outside bytes (fuzz/fuzz_targets/: CSV setup and
# parsing, split boundaries, compressed input, Hadoop XML, flatfiles, SASL, token files, IPC
# frames, REST JSON). The test command runs each for EDDY_FUZZ_SECONDS (default 10); a longer
# run: EDDY_FUZZ_SECONDS=600 scripts/fuzz.sh [TARGET...]. A crash is saved under
# target/fuzz/artifacts/TARGET/; copied into fuzz/regressions/TARGET/ it is replayed on
# every run (and its fix gets a test where the parser lives).
set -euo pipefail
cd "$(dirname "$0")/.."

# libFuzzer needs the nightly compiler (sanitizer coverage flags); the project builds on stable.
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "== installing the nightly Rust toolchain for cargo fuzz" >&2
  rustup toolchain install nightly --profile minimal >&2 || { echo "cargo fuzz needs Rust nightly: rustup toolchain install nightly" >&2; exit 1; }
fi
CARGO_FUZZ_VERSION=0.13.1
tools="$PWD/target/tools/cargo-fuzz"
if [ "$("$tools/bin/cargo-fuzz" --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
  echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION into $tools" >&2
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root "$tools" --quiet
fi
PATH="$tools/bin:$PATH"

seconds="${EDDY_FUZZ_SECONDS:-10}"
work="$PWD/target/fuzz"
mkdir -p "$work/corpus" "$work/artifacts"
if [ "$#" -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir fuzz); fi
# Safe Rust: panics and aborts are what we look for, so no AddressSanitizer (its build of
# arrow and tonic costs minutes and finds nothing safe code could not).
echo "== building ${#targets[@]} fuzz targets"
cargo +nightly fuzz build --fuzz-dir fuzz --sanitizer none --target-dir "$work/build"
for t in "${targets[@]}"; do
  corpus="$work/corpus/$t"
  mkdir -p "$corpus" "$work/artifacts/$t"
  # A few real inputs to start from.
  case "$t" in
    csv_setup_and_parse|split_records) head -c 4096 data/sample.csv >"$corpus/sample-head.csv" ;;
    rest_json) echo '{"path":"/data/x.csv","parse_setup":{"separator":";","column_types":["int","enum"]}}' >"$corpus/import.json" ;;
  esac
  if [ -d "fuzz/regressions/$t" ]; then
    echo "== $t: replaying fuzz/regressions/$t"
    cargo +nightly fuzz run --fuzz-dir fuzz --sanitizer none --target-dir "$work/build" "$t" fuzz/regressions/"$t"/* -- -runs=0
  fi
  echo "== $t: fuzzing for ${seconds} s"
  log="$work/$t.log"
  status=0
  cargo +nightly fuzz run --fuzz-dir fuzz --sanitizer none --target-dir "$work/build" "$t" "$corpus" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/$t/" >"$log" 2>&1 || status=$?
  grep -E "^stat::(number_of_executed_units|peak_rss_mb)" "$log" | tr '\n' ' ' || true
  echo
  if [ "$status" -ne 0 ] || [ -n "$(ls -A "$work/artifacts/$t")" ]; then
    tail -40 "$log" >&2
    echo "fuzz target $t failed (exit $status); inputs in $work/artifacts/$t/ (replay: cargo +nightly fuzz run --fuzz-dir fuzz $t FILE)" >&2
    exit 1
  fi
done
