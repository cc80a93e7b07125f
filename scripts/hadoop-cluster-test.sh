#!/usr/bin/env bash
# Runs Eddy against a real Hadoop mini-cluster in Docker (deploy/hadoop/docker-compose.yml):
# HDFS with two DataNodes and 1 MiB blocks, the sample dataset put there as user "analyst",
# and an Eddy cloud that imports it and prints its summary: once as local workers, once in
# YARN containers (eddy-driver yarn). Needs a Docker engine with
# Compose v2 and access to Docker Hub; the project's own CI machines have neither, so CI
# runs the protocol-level test HDFS and YARN instead (cargo test -p eddy-tests --test hdfs --test yarn).
set -euo pipefail
cd "$(dirname "$0")/../deploy/hadoop"
compose=(docker compose -f docker-compose.yml)
trap '"${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true' EXIT
"${compose[@]}" up -d --build namenode datanode1 datanode2 resourcemanager nodemanager
"${compose[@]}" run --rm seed
"${compose[@]}" run --rm eddy
echo "Eddy imported the sample dataset from a real HDFS."
"${compose[@]}" run --rm eddy-yarn
echo "Eddy ran in YARN containers and imported the sample dataset from a real HDFS."
