"""Eddy from Python.

Reach any running cloud, however it was started (``eddy-driver local``, ``yarn``, ``ssh``,
Kubernetes, standalone workers)::

    import eddy
    ec = eddy.connect("http://host:54321", token="...")   # the token the driver printed
    print(ec.cloud())                                     # status: nodes, health, leader
    f = ec.import_file("s3://bucket/data/*.csv")          # a Frame; a progress bar in terminals
    print(f.summary())                                    # per column: count, missing, min, max...
    df = f.to_pandas()                                    # or to_arrow(), to_polars(): read in
                                                          # parallel from the workers (Arrow Flight)
    g = ec.from_pandas(df, name="again")                  # written in parallel to every worker
    f.group_by("key", {"x": "mean"}).to_arrow()
    f.export("hdfs://nn/out/", format="parquet"); f.delete(); ec.shutdown()

Or start a local cloud tied to this process, for notebooks: ``ec = eddy.start_local(nodes=3)``.

``eddy.spark.EddyContext`` attaches a cloud to a running Spark application: one
``eddy-mapper`` worker per executor (see :mod:`eddy.spark`).

Errors are :class:`EddyError`, with the server's message. The wheel carries the
``eddy-driver`` and ``eddy-mapper`` binaries (``eddy/bin/``; also run as console scripts, and
``python -m eddy`` is ``eddy-driver``); ``$EDDY_BIN_DIR`` names others (see
:mod:`eddy.binaries`). Arrow data needs pyarrow (the ``arrow`` extra), progress bars tqdm (``progress``):
``pip install "./python[arrow,progress]"`` from a source checkout, or the wheel's path with them.
"""

from eddy.binaries import find_binary
from eddy.client import Client, Frame, LocalCloud, connect, start_local
from eddy.errors import EddyError

__all__ = ["Client", "EddyError", "Frame", "LocalCloud", "connect", "find_binary", "start_local"]
