#!/usr/bin/env bash
# Validates the project's Compose files (deploy/hadoop/docker-compose.yml) as
# `docker compose config` does: with `docker compose` where the Compose plugin is installed,
# else with scripts/compose-check (a small Go program on compose-go, the library the plugin
# loads Compose files with; Go's module cache holds it after the first run). Machines with a
# Docker client but no engine or plugin (the project's CI) validate the file this way; running
# the cluster it describes needs a Docker engine (scripts/hadoop-cluster-test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
files=(deploy/hadoop/docker-compose.yml)

if docker compose version >/dev/null 2>&1; then
  for f in "${files[@]}"; do
    docker compose -f "$f" config --quiet
    echo "$f: valid (docker compose config)"
  done
  exit 0
fi
command -v go >/dev/null 2>&1 || {
  echo "neither \`docker compose\` nor Go is installed: install one (Go: https://go.dev/dl) to validate ${files[*]}" >&2
  exit 1
}
checker="$PWD/target/compose-check"
(cd scripts/compose-check && go build -o "$checker" .)
# The checker must refuse what Compose refuses, or its "valid" means nothing.
bad="$(mktemp)"
trap 'rm -f "$bad"' EXIT
printf 'services:\n  a:\n    image: busybox\n    imgae: typo\n' >"$bad"
if "$checker" "$bad" >/dev/null 2>&1; then
  echo "compose-check accepted a file with an unknown service key" >&2
  exit 1
fi
absolute=()
for f in "${files[@]}"; do absolute+=("$PWD/$f"); done
"$checker" "${absolute[@]}"
