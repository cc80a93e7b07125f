#!/usr/bin/env python3
"""Time from starting `eddy-driver local --nodes N` to its "Cloud of size N formed" line.

    python3 bench/formation.py [N] [RUNS]      defaults: 3 5
Uses target/release/eddy-driver (build it first: cargo build --release -p eddy-driver -p eddy-mapper).
"""
import statistics, subprocess, sys, time

n = int(sys.argv[1]) if len(sys.argv) > 1 else 3
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
times = []
for r in range(runs):
    t0 = time.monotonic()
    p = subprocess.Popen(["target/release/eddy-driver", "local", "--nodes", str(n), "--port", "0", "--memory", "1g", "--check"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    formed = None
    for line in p.stdout:
        if f"Cloud of size {n} formed" in line and formed is None:
            formed = time.monotonic() - t0
    p.wait(timeout=60)
    if formed is None or p.returncode != 0:
        sys.exit(f"run {r + 1}: the cloud did not form (exit {p.returncode})")
    times.append(formed)
    print(f"nodes={n} run={r + 1} formed_s={formed:.3f}")
print(f"nodes={n} MEDIAN formed_s={statistics.median(times):.3f}")
