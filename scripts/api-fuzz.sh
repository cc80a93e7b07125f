#!/usr/bin/env bash
# The REST API fuzzed from its OpenAPI document (GET /openapi.json) with schemathesis from
# PyPI, in a venv of its own, against a real local cloud of the binaries in target/debug (or
# EDDY_BIN_DIR): no 5xx answer, and the cloud stays healthy. EDDY_FUZZ_EXAMPLES cases per
# operation (default 25; a longer run: EDDY_FUZZ_EXAMPLES=500 scripts/api-fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/venv.sh
. scripts/lib/venv.sh
ensure_venv target/schemathesis-venv schemathesis==4.32.5
target/schemathesis-venv/bin/python scripts/api_fuzz.py
