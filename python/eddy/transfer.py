"""Frames to and from Arrow tables in this process, in parallel with the workers.

``Frame.to_arrow`` reads every chunk with an Arrow Flight ``DoGet`` from the worker that
holds it, several at once; ``Client.from_arrow`` cuts a table into chunks and puts them with
``DoPut`` on every worker at once, then commits them over REST as one frame. No data passes
through the REST node. A REST client does not hold the cluster secret: its calls carry a
grant the REST API gave it (``POST /3/Frames/{id}/grant``), good for one frame for an hour,
and go over TLS verified against the CA that the same answer names.

Needs pyarrow (the ``arrow`` extra: ``pip install "./python[arrow]"``).
"""

import json
import math
from concurrent.futures import ThreadPoolExecutor

from eddy.client import frame_path as _path
from eddy.errors import EddyError

GRANT_HEADER = b"x-eddy-grant"

# A chunk written by from_arrow holds about this much: big enough that a put's fixed cost
# (a connection, a TLS handshake) is small, small enough that every worker gets several.
CHUNK_BYTES = 64 << 20

# Rows per Flight message, as the workers store them.
BATCH_ROWS = 64 * 1024


def flight_client(ip, port, ca_pem):
    """A Flight client of one worker: TLS that trusts only the cloud's CA, or plain TCP."""
    import pyarrow.flight as fl

    if ca_pem is None:
        return fl.FlightClient(f"grpc+tcp://{ip}:{port}")
    return fl.FlightClient(f"grpc+tls://{ip}:{port}", tls_root_certs=ca_pem)


def _worker_error(ip, port, what, e):
    """A Flight failure as an EddyError naming the worker, with the worker's own message."""
    message = str(e).split("Detail:")[0].strip().removeprefix("Flight returned").strip()
    return EddyError(f"{what} on worker {ip}:{port} failed: {message}")


def _grant_options(grant):
    import pyarrow.flight as fl

    return fl.FlightCallOptions(headers=[(GRANT_HEADER, grant.encode())])


def _threads(work, nodes, threads):
    """Calls at once: given, or two per worker (one streams while the other waits)."""
    return max(1, min(len(work), threads or 2 * max(1, nodes)))


def _empty_table(columns):
    """A table of no rows with the frame's columns (a frame without chunks sends no schema)."""
    import pyarrow as pa

    types = {"int": pa.int64(), "real": pa.float64(), "bool": pa.bool_(), "time": pa.timestamp("ms"), "string": pa.string()}
    types["enum"] = pa.dictionary(pa.int32(), pa.string())
    return pa.table({c["name"]: pa.array([], type=types[c["type"]]) for c in columns})


def _as_categoricals(table, columns):
    """Categorical columns as dictionaries, so that pandas gets ``category`` and polars
    ``Categorical`` back. Reads ask for them (``"dictionaries": true``); a worker that sends
    strings anyway (one of an older version) has them encoded here."""
    import pyarrow as pa

    for c in columns:
        if c["type"] == "enum":
            i = table.schema.get_field_index(c["name"])
            if i >= 0 and not pa.types.is_dictionary(table.schema.field(i).type):
                table = table.set_column(i, table.schema.field(i).name, table.column(i).dictionary_encode())
    return table


def read_frame(access, threads=None):
    """The frame of a read grant (``access``: the grant answer) as one ``pyarrow.Table``,
    its chunks in order."""
    import pyarrow as pa
    import pyarrow.flight as fl

    info = access["frame"]
    chunks = info["chunks"]
    options = _grant_options(access["grant"])

    def read(chunk):
        node = chunk["node"]
        client = flight_client(node["ip"], node["grpc_port"], access["tls_ca"])
        try:
            ticket = fl.Ticket(json.dumps({"frame_id": info["frame_id"], "chunk": chunk["index"], "dictionaries": True}).encode())
            return client.do_get(ticket, options).read_all()
        except fl.FlightError as e:
            raise _worker_error(node["ip"], node["grpc_port"], f"reading chunk {chunk['index']}", e) from None
        finally:
            client.close()

    nodes = {(c["node"]["ip"], c["node"]["grpc_port"]) for c in chunks}
    with ThreadPoolExecutor(_threads(chunks, len(nodes), threads)) as pool:
        tables = list(pool.map(read, chunks))
    table = pa.concat_tables(tables) if tables else _empty_table(info["columns"])
    return _as_categoricals(table, info["columns"])


def as_arrow_table(data):
    """``data`` as a ``pyarrow.Table``: a table, record batch, pandas or polars DataFrame, or
    anything that offers the Arrow C stream interface."""
    import pyarrow as pa

    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    module = type(data).__module__.split(".")[0]
    if module == "pandas":
        return pa.Table.from_pandas(data, preserve_index=False)
    if module == "polars":
        return data.to_arrow()
    if hasattr(data, "__arrow_c_stream__"):
        return pa.table(data)
    raise TypeError(
        f"cannot make a frame of a {type(data).__name__}; pass a pyarrow Table or RecordBatch, "
        "a pandas or a polars DataFrame"
    )


def check_types(schema):
    """Refuses, before anything is sent, a column the workers cannot hold, naming it."""
    import pyarrow as pa
    import pyarrow.types as t

    for field in schema:
        ty = field.type
        value = ty.value_type if t.is_dictionary(ty) else ty
        fine = (
            (t.is_integer(ty) and ty != pa.uint64())
            or t.is_floating(ty) and ty != pa.float16()
            or t.is_decimal128(ty)
            or t.is_boolean(ty)
            or t.is_string(ty) or t.is_large_string(ty) or getattr(t, "is_string_view", lambda _: False)(ty)
            or (t.is_dictionary(ty) and (t.is_string(value) or t.is_large_string(value)))
            or t.is_timestamp(ty) or t.is_date(ty)
        )
        if not fine:
            hint = "an all-missing column has no type: give it one" if t.is_null(ty) else "cast it first"
            raise TypeError(
                f"column {field.name!r} is {ty}; frames hold integers (up to 64 bits signed, 32 unsigned), "
                f"floats, decimals, booleans, strings, categoricals, timestamps and dates ({hint})"
            )


def write_table(request, table, frame_id, categorical=(), threads=None, chunk_bytes=CHUNK_BYTES):
    """Puts ``table`` as frame ``frame_id``: asks for a write grant, puts chunks on every
    worker at once, commits them. ``request``: the REST client's request function. Returns
    the committed frame's metadata; on failure nothing stays behind."""
    import pyarrow.flight as fl

    check_types(table.schema)
    # Outside the clean-up below: a refused grant (the id is taken) must not delete that frame.
    access = request("POST", f"{_path(frame_id)}/grant", {"access": "write"})
    workers = access["workers"]
    pieces = max(1, math.ceil(table.nbytes / chunk_bytes))
    pieces = math.ceil(pieces / len(workers)) * len(workers)
    per = max(1, math.ceil(table.num_rows / pieces))
    slices = [table.slice(start, per) for start in range(0, table.num_rows, per)] or [table]
    options = _grant_options(access["grant"])

    def put(position):
        worker = workers[position % len(workers)]
        piece = slices[position]
        client = flight_client(worker["ip"], worker["grpc_port"], access["tls_ca"])
        try:
            command = json.dumps({"frame_id": frame_id, "chunk": position, "categorical": list(categorical)})
            writer, reader = client.do_put(fl.FlightDescriptor.for_command(command.encode()), piece.schema, options)
            writer.write_table(piece, max_chunksize=BATCH_ROWS)
            writer.done_writing()
            reply = reader.read()
            writer.close()
        except fl.FlightError as e:
            raise _worker_error(worker["ip"], worker["grpc_port"], f"writing chunk {position}", e) from None
        finally:
            client.close()
        if reply is None:
            raise RuntimeError(f"worker {worker['ip']}:{worker['grpc_port']} sent no reply for chunk {position}")
        return json.loads(reply.to_pybytes())

    try:
        with ThreadPoolExecutor(_threads(slices, len(workers), threads)) as pool:
            replies = list(pool.map(put, range(len(slices))))
        body = {
            "columns": replies[0]["columns"],
            "chunks": [{"index": r["chunk"], "node": r["node"], "rows": r["rows"], "bytes": r["bytes"]} for r in replies],
            "sources": ["Arrow table from Python"],
        }
        return request("POST", f"{_path(frame_id)}/commit", body)["frame"]
    except BaseException:
        _discard_staged(request, frame_id)
        raise


def _discard_staged(request, frame_id):
    """After a failed write: drops this write's staged chunks (a DELETE of an id no node has
    registered sweeps them from every node, then answers 404). If the id got registered
    meanwhile, that is someone else's frame (an import, another write): it stays, and its
    commit already dropped the chunks it did not list. Between the check and the DELETE a
    registration can still slip in; two writers of one new id at once are not kept apart."""
    try:
        request("GET", f"{_path(frame_id)}?row_count=0")
        return
    except EddyError:
        pass
    try:
        request("DELETE", _path(frame_id))
    except EddyError:
        pass  # 404 after the sweep; or the node is gone, and the chunks with it
