"""Frames to and from Python, side by side in one run (bench/python_transfer.sh runs it):

- pyarrow.csv.read_csv and polars.read_csv of the reference CSV (the data a user would
  otherwise read again);
- ``Frame.to_arrow()`` of the imported frame from a 2-worker local cloud (chunks read in
  parallel over Arrow Flight, categoricals turned back into dictionaries);
- raw DoGet: the same Flight calls with the same parallelism, batches counted and dropped
  (what the transport gives before the client assembles a table);
- ``Client.from_arrow()`` of that table (chunks put on both workers at once, then committed).

Median of RUNS for each; rates in MB/s of the Arrow table's bytes.
    python_transfer.py CSV RUNS
"""

import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.flight as fl

import eddy
from eddy import transfer


def timed(runs, f):
    seconds, result = [], None
    for _ in range(runs):
        t = time.perf_counter()
        result = f()
        seconds.append(time.perf_counter() - t)
    return statistics.median(seconds), result


def raw_doget(ec, frame_id):
    """Every chunk's DoGet as to_arrow asks for it, batches dropped; returns bytes received."""
    access = ec._request("POST", f"/3/Frames/{frame_id}/grant", {"access": "read"})
    chunks = access["frame"]["chunks"]
    options = fl.FlightCallOptions(headers=[(transfer.GRANT_HEADER, access["grant"].encode())])

    def read(chunk):
        node = chunk["node"]
        client = transfer.flight_client(node["ip"], node["grpc_port"], access["tls_ca"])
        try:
            ticket = {"frame_id": frame_id, "chunk": chunk["index"], "dictionaries": True}
            reader = client.do_get(fl.Ticket(json.dumps(ticket).encode()), options)
            size = 0
            for piece in reader:
                size += piece.data.nbytes
            return size
        finally:
            client.close()

    nodes = {(c["node"]["ip"], c["node"]["grpc_port"]) for c in chunks}
    with ThreadPoolExecutor(transfer._threads(chunks, len(nodes), None)) as pool:
        return sum(pool.map(read, chunks))


def main():
    path, runs = sys.argv[1], int(sys.argv[2])
    print(f"eddy from {eddy.__file__}")
    t_pyarrow, table_csv = timed(runs, lambda: pacsv.read_csv(path))
    t_polars, _ = timed(runs, lambda: pl.read_csv(path))
    mb = table_csv.nbytes / 1e6
    print(f"csv: {table_csv.num_rows} rows; pyarrow's table: {mb:.0f} MB")
    with eddy.start_local(nodes=2, memory="8g") as ec:
        t = time.perf_counter()
        frame = ec.import_file(path, name="ref.hex", progress=False)
        print(f"import (not compared): {time.perf_counter() - t:.2f} s, {len(frame.info()['chunks'])} chunks")
        t_to, table = timed(runs, frame.to_arrow)
        t_raw, raw_bytes = timed(runs, lambda: raw_doget(ec, "ref.hex"))
        names = iter(range(runs))
        t_from, _ = timed(runs, lambda: ec.from_arrow(table, name=f"back{next(names)}"))
        out_mb = table.nbytes / 1e6
    print(f"to_arrow table: {out_mb:.0f} MB (categoricals as dictionaries); raw DoGet received {raw_bytes / 1e6:.0f} MB")
    rows = [
        ("pyarrow.csv.read_csv", t_pyarrow, mb),
        ("polars.read_csv", t_polars, mb),
        ("Frame.to_arrow()", t_to, out_mb),
        ("raw DoGet (dropped)", t_raw, raw_bytes / 1e6),
        ("Client.from_arrow()", t_from, out_mb),
    ]
    print(f"{'what':<24}{'seconds':>9}{'MB/s':>9}")
    for what, seconds, size in rows:
        print(f"{what:<24}{seconds:>9.2f}{size / seconds:>9.0f}")
    print(f"ratio to_arrow / pyarrow read_csv (time): {t_to / t_pyarrow:.2f}")
    print(f"ratio to_arrow / raw DoGet (time): {t_to / t_raw:.2f}")
    print(f"ratio from_arrow / pyarrow read_csv (time): {t_from / t_pyarrow:.2f}")


if __name__ == "__main__":
    main()
