"""Spark DataFrames to Eddy frames and back, over Arrow Flight.

``as_frame``: one Spark task per partition (``mapInArrow``) streams the partition's Arrow
batches with a Flight ``DoPut`` to an Eddy worker, preferring the worker of its own executor,
then one on its host; each put is staged as one chunk (chunk index = partition). The driver
collects the puts' replies and commits them (``POST /3/Frames/{id}/commit``), which registers
the frame on every node and drops chunks of superseded task attempts. No HTTP carries data,
nothing is pickled, and the data is read once.

``as_spark_frame``: one Spark task per chunk streams it back with a Flight ``DoGet`` from the
worker that holds it; columns come back with the Spark types they went in with.

Calls to workers carry the cloud's HMAC token (``x-eddy-auth``, see ``eddy_common::auth``)
and go over TLS verified against the cloud's CA (``eddy-driver cloud-ca``) unless the cloud's
internal TLS is off (``ca_pem`` None).
"""

import hashlib
import hmac
import json
import os
import socket
import time
import uuid

from eddy.transfer import flight_client

AUTH_HEADER = b"x-eddy-auth"


def auth_token(secret, cloud_name):
    """A token an Eddy node accepts once: ``millis.nonce.hex(HMAC-SHA256(secret,
    eddy-v2|cloud|millis|nonce))`` with 64 random bits of nonce (see ``eddy_common::auth``)."""
    millis = int(time.time() * 1000)
    nonce = os.urandom(8).hex()
    tag = hmac.new(secret.strip().encode(), f"eddy-v2|{cloud_name}|{millis}|{nonce}".encode(), hashlib.sha256).hexdigest()
    return f"{millis}.{nonce}.{tag}"


def _choose_worker(workers, partition):
    """The worker for this task: the one started on this executor (same host name and PySpark
    daemon), else one on this host, else any; spread over candidates by partition."""
    me = (socket.gethostname(), os.getppid())
    same_executor = [w for w in workers if (w["hostname"], w["daemon"]) == me]
    same_host = [w for w in workers if w["hostname"] == me[0]]
    candidates = same_executor or same_host or workers
    return candidates[partition % len(candidates)], bool(same_executor or same_host)


def _flight_options(secret, cloud_name):
    import pyarrow.flight as fl

    return fl.FlightCallOptions(headers=[(AUTH_HEADER, auth_token(secret, cloud_name).encode())])


def put_partitions(frame_id, workers, secret, cloud_name, ca_pem, categorical, empty_schema_ipc, names, nullable):
    """The ``mapInArrow`` function of ``as_frame``: stages its partition as one chunk.

    The DataFrame it runs on has placeholder column names (see :func:`safe_names`); its batches
    get the real ``names`` back here. With no ``names`` (a DataFrame without columns) it has one
    placeholder column that only carries the row count, which Spark's Arrow batches of no
    columns lose; the batches sent have no columns. ``nullable``: per column, as the
    DataFrame's schema says (the batches may say otherwise: Spark's optimiser can prove a
    column of a nullable schema free of nulls), so the frame goes back with the same schema."""

    def real(batch):
        import pyarrow as pa

        if not names:
            return batch.select([])
        fields = [f.with_name(n).with_nullable(null) for f, n, null in zip(batch.schema, names, nullable)]
        return pa.RecordBatch.from_arrays(batch.columns, schema=pa.schema(fields))

    def put(batches):
        import pyarrow as pa
        import pyarrow.flight as fl
        from pyspark import TaskContext

        ctx = TaskContext.get()
        partition = ctx.partitionId()
        worker, local = _choose_worker(workers, partition)
        started = time.time()
        batches = (real(b) for b in batches)
        first = next(batches, None)
        schema = first.schema if first is not None else pa.ipc.read_schema(pa.py_buffer(empty_schema_ipc))
        client = flight_client(worker["ip"], worker["grpc_port"], ca_pem)
        try:
            command = json.dumps({"frame_id": frame_id, "chunk": partition, "categorical": list(categorical)})
            writer, reader = client.do_put(
                fl.FlightDescriptor.for_command(command.encode()), schema, _flight_options(secret, cloud_name)
            )
            rows = 0
            if first is not None:
                writer.write_batch(first)
                rows += first.num_rows
                for b in batches:
                    writer.write_batch(b)
                    rows += b.num_rows
            writer.done_writing()
            reply = reader.read()
            writer.close()
        finally:
            client.close()
        if reply is None:
            raise RuntimeError(f"Eddy worker {worker['ip']}:{worker['grpc_port']} sent no reply for partition {partition}")
        result = json.loads(reply.to_pybytes())
        result["local"] = local
        result["seconds"] = time.time() - started
        result["attempt"] = ctx.attemptNumber()
        yield pa.RecordBatch.from_arrays([pa.array([json.dumps(result)])], names=["reply"])

    return put


def get_chunks(frame_id, chunks, secret, cloud_name, ca_pem, arrow_schema_ipc):
    """The ``mapInArrow`` function of ``as_spark_frame``: reads the chunks its rows name."""

    def get(batches):
        import pyarrow as pa
        import pyarrow.flight as fl

        target = pa.ipc.read_schema(pa.py_buffer(arrow_schema_ipc))
        for b in batches:
            for position in b.column(0).to_pylist():
                chunk = chunks[int(position)]
                node = chunk["node"]
                client = flight_client(node["ip"], node["grpc_port"], ca_pem)
                try:
                    ticket = fl.Ticket(json.dumps({"frame_id": frame_id, "chunk": chunk["index"]}).encode())
                    reader = client.do_get(ticket, _flight_options(secret, cloud_name))
                    for piece in reader:
                        data = piece.data
                        if data.num_rows == 0:
                            continue
                        # Spark knows the columns by placeholder names (see safe_names).
                        data = data.rename_columns(target.names)
                        if data.schema == target:
                            yield data
                        else:
                            # Categoricals arrive as strings, CSV times without a zone: Spark's types.
                            yield from pa.Table.from_batches([data]).cast(target).to_batches()
                finally:
                    client.close()

    return get


def safe_names(n):
    """Placeholder column names for ``mapInArrow``: PySpark resolves its input columns by name,
    and a name with a dot (``a.b``) resolves as a field of a struct and fails. Only the
    placeholders reach Spark's analyser; the real names travel with the tasks."""
    return [f"_eddy_{k}" for k in range(n)]


def new_frame_id(name=None):
    return name or f"spark_{uuid.uuid4().hex[:12]}.hex"
