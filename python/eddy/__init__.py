"""Eddy from Python.

``eddy.connect("http://host:54321", token=...)`` works with any running cloud (frames,
imports, summaries, the cloud's state); ``eddy.start_local(nodes=3)`` starts a local one tied
to this process (``eddy.client``).

``eddy.spark.EddyContext`` attaches an Eddy cloud to a running Spark application: one
``eddy-mapper`` worker per executor, the Spark driver's machine running the gather service
and the observer client (``eddy-driver attach``).

The package does not carry the Rust binaries; it locates them (see ``eddy.binaries``):
``$EDDY_BIN_DIR``, then ``eddy/bin/`` inside this package (for wheels that bundle them),
then ``PATH``. Executors need nothing installed: the mapper binary travels with the Spark
job through ``SparkContext.addFile``.
"""

from eddy.binaries import find_binary
from eddy.client import Client, EddyError, LocalCloud, connect, start_local

__all__ = ["Client", "EddyError", "LocalCloud", "connect", "find_binary", "start_local"]
