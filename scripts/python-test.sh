#!/usr/bin/env bash
# The Python package as users get it: builds the wheel with the eddy-driver and eddy-mapper
# binaries inside, installs it into a new venv (target/wheel-venv) with nothing else of this
# repository, and runs python/wheel_tests there: a local cloud started from Python and the
# API end to end. The binaries come from target/debug (built by the test command before this;
# EDDY_WHEEL_BINARIES names others); `pip install ./python` alone builds release ones with cargo.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=lib/wheel.sh
. scripts/lib/wheel.sh
echo "== building the wheel"
wheel="$(build_wheel)"
echo "   $wheel ($(du -h "$wheel" | cut -f1))"

echo "== installing it into a new venv"
rm -rf target/wheel-venv
python3 -m venv target/wheel-venv
target/wheel-venv/bin/pip install --quiet --disable-pip-version-check \
  "$wheel[arrow,pandas,polars,progress]" pyarrow==26.0.1 pandas==3.1.1 polars==2.1.0 tqdm==4.70.1

echo "== the API against a local cloud started from Python (python/wheel_tests)"
# Outside the repository, without EDDY_BIN_DIR: eddy and its binaries come from the venv.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tests="$PWD/python/wheel_tests"
(cd "$work" && env -u EDDY_BIN_DIR -u PYTHONPATH "$OLDPWD/target/wheel-venv/bin/python" -W ignore::ResourceWarning \
  -m unittest discover -s "$tests" -t "$tests" -v)
