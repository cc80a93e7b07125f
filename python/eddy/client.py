"""A client for any running Eddy cloud, over its REST API.

``eddy.connect(url, token=...)`` reaches a cloud however it was started (``eddy-driver local``,
``yarn``, ``ssh``, Kubernetes, standalone workers); ``eddy.start_local(nodes=3)`` starts a
local cloud tied to this Python process. Frames are :class:`Frame` handles: the data stays on
the workers until ``to_arrow``/``to_pandas``/``to_polars`` reads it, in parallel over Arrow
Flight (:mod:`eddy.transfer`). Errors are :class:`EddyError` with the server's message.

The REST calls use only the standard library; Arrow data needs pyarrow, progress bars tqdm.
"""

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

from eddy.binaries import find_binary
from eddy.display import CloudStatus, Records, Rows
from eddy.errors import EddyError


def frame_path(frame):
    """``/3/Frames/<id>`` with the id quoted: an id may hold ``?``, ``#``, ``/`` or spaces."""
    return "/3/Frames/" + urllib.parse.quote(_frame_id(frame), safe="")


def _frame_id(frame):
    if isinstance(frame, str):
        return frame
    if isinstance(frame, Frame):
        return frame.frame_id
    return frame["frame_id"]


class Client:
    """The REST API of one node of a cloud; any node answers for the whole cloud.

    ``url``: ``http://host:54321``; ``token``: the cloud's access token (printed by the driver,
    ``token=`` in its ``--notify`` file, or ``eddy-driver token``); ``None`` for a cloud
    started with ``--rest-auth none``; ``ca_file``: for an ``https://`` cloud whose certificate
    your system does not trust, the PEM file of the CA that signed it (its ``--tls-ca``)."""

    # Subclasses that do not call __init__ (EddyContext) talk plain HTTP to their observer.
    _ssl = None

    def __init__(self, url, token=None, timeout=60, ca_file=None):
        parsed = urllib.parse.urlparse(url if "://" in url else "http://" + url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise EddyError(f"{url!r} is not a node's REST URL; write http://HOST:PORT")
        self.url = f"{parsed.scheme}://{parsed.netloc}"
        self.rest_token = token
        self._request_timeout = timeout
        if parsed.scheme == "https":
            import ssl

            self._ssl = ssl.create_default_context(cafile=ca_file)

    def _request(self, method, path, body=None, timeout=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if self.rest_token:
            req.add_header("Authorization", f"Bearer {self.rest_token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout or self._request_timeout, context=self._ssl) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")
            try:
                detail = json.loads(detail).get("error", detail)
            except (ValueError, AttributeError):
                pass
            if e.code == 401:
                detail = f"{detail} (pass token=..., the access token the driver printed)"
            raise EddyError(f"{method} {path}: {e.code} {detail}") from None
        except urllib.error.URLError as e:
            import ssl

            if isinstance(e.reason, ssl.SSLCertVerificationError):
                raise EddyError(
                    f"{self.url} presented a certificate this client does not trust ({e.reason.verify_message}); "
                    "pass ca_file= with the CA that signed it"
                ) from None
            raise EddyError(f"cannot reach {self.url}: {e.reason}; is the cloud running?") from None

    # -- the cloud -----------------------------------------------------------------------

    def cloud(self) -> CloudStatus:
        """``GET /3/Cloud``: name, size, health, leader, members (H2O's field names), as a
        dict that prints as a readable status (and as a table in notebooks)."""
        return CloudStatus(self._request("GET", "/3/Cloud", timeout=10))

    def shutdown(self):
        """Stops every node of the cloud."""
        self._request("POST", "/3/Shutdown", timeout=10)

    # -- frames --------------------------------------------------------------------------

    def frames(self) -> Records:
        """Every frame (``GET /3/Frames``): id, rows, columns, bytes in memory, nodes."""
        return Records(self._request("GET", "/3/Frames")["frames"], ("frame_id", "rows", "columns", "bytes_in_memory"))

    def frame(self, frame: Union[str, "Frame"]) -> "Frame":
        """The frame ``frame`` (an id), checked to exist."""
        handle = Frame(self, _frame_id(frame))
        handle.info()
        return handle

    def frame_info(self, frame) -> Dict[str, Any]:
        """A frame's metadata: columns, rows, chunks and the workers holding them."""
        return self._request("GET", f"{frame_path(frame)}?row_count=0")["frame"]

    def head(self, frame, n: int = 10) -> Rows:
        """The first ``n`` rows as lists of strings (``None`` for missing values); ``.names``
        has the columns."""
        answer = self._request("GET", f"{frame_path(frame)}?row_offset=0&row_count={int(n)}")
        return Rows(answer["rows"], [c["name"] for c in answer["frame"]["columns"]])

    def summary(self, frame, bins: Optional[int] = None) -> Records:
        """Per column: type, count, missing, min, max, mean, sd, zeros; levels for
        categoricals; a histogram of ``bins`` bins (default 20, 0 for none)."""
        query = "" if bins is None else f"?bins={int(bins)}"
        columns = self._request("GET", f"{frame_path(frame)}/summary{query}")["columns"]
        return Records(columns, ("label", "type", "count", "missing", "min", "max", "mean", "sd"))

    def delete(self, frame) -> None:
        """Frees a frame on every node."""
        self._request("DELETE", frame_path(frame))

    def import_file(self, path: str, name: Optional[str] = None, timeout: float = 3600, progress: Optional[bool] = None,
                    **options) -> "Frame":
        """Imports a file, directory or glob (local, ``s3://``, ``hdfs://``...) into a frame.

        ``options`` go into the import request (``parse_setup={...}`` overrides of the guessed
        setup, ``strict``, ``format``, ``split_bytes``). ``progress``: a progress bar of the
        bytes read (tqdm, in terminals and notebooks); by default one shows when tqdm is
        installed and the output is a terminal or a notebook. Raises :class:`EddyError` with
        the server's reason if the import fails."""
        job = self.import_job(path, name, timeout, progress, **options)
        if job["status"] != "DONE":
            raise EddyError(f"import of {path} failed: {job['error']}")
        return Frame(self, job["dest"])

    def import_job(self, path: str, name: Optional[str] = None, timeout: float = 3600, progress: Optional[bool] = None,
                   **options) -> Dict[str, Any]:
        """Like :meth:`import_file`, but returns the finished job (``status``, ``dest``,
        ``error``, ``parse_report`` with the bad values counted and examples) instead of raising."""
        body = dict(options, path=path)
        if name:
            body["destination_frame"] = name
        job = self._request("POST", "/3/ImportFiles", body)["job"]["key"]
        bar = _progress_bar(progress, f"import {os.path.basename(path.rstrip('/')) or path}")
        deadline = time.time() + timeout
        try:
            while time.time() < deadline:
                state = self._request("GET", f"/3/Jobs/{job}")["jobs"][0]
                if bar is not None:
                    bar.total = state["bytes_total"] or None
                    bar.update(state["bytes_read"] - bar.n)
                    bar.set_postfix(rows=f"{state['rows']:,}", refresh=False)
                if state["status"] != "RUNNING":
                    return state
                time.sleep(0.1)
        finally:
            if bar is not None:
                bar.close()
        raise EddyError(f"import of {path} did not finish within {timeout} s; it keeps running as {job}")

    def export(self, frame, url: str, format: str = "csv", single_file: bool = False) -> Dict[str, Any]:
        """Writes a frame as CSV or Parquet to a path or URL (``s3://``, ``hdfs://``...): a
        directory of one file per chunk, or with ``single_file`` one file. Returns the files
        written and their bytes."""
        body = {"path": url, "format": format, "single_file": bool(single_file)}
        return self._request("POST", f"{frame_path(frame)}/export", body)

    def group_by(self, frame, by: Union[str, Sequence[str]], aggs: Union[Dict[str, Union[str, Sequence[str]]], Sequence],
                 name: Optional[str] = None) -> "Frame":
        """Groups a frame by the columns ``by`` into a new frame of aggregates.

        ``aggs``: ``{"x": "mean", "y": ["min", "max"]}`` or ``[("sum", "x"), ("count", "y")]``;
        the functions are count, sum, mean, min and max. ``name``: the new frame's id."""
        body = {"by": [by] if isinstance(by, str) else list(by), "aggs": _aggregates(aggs)}
        if name:
            body["destination_frame"] = name
        info = self._request("POST", f"{frame_path(frame)}/groupby", body)["frame"]
        return Frame(self, info["frame_id"])

    # -- Arrow data ---------------------------------------------------------------------

    def from_arrow(self, data: Any, name: Optional[str] = None, categorical: Iterable[str] = (),
                   threads: Optional[int] = None) -> "Frame":
        """A new frame of ``data``: a pyarrow Table or RecordBatch, a pandas or a polars
        DataFrame. Chunks go to every worker at once over Arrow Flight.

        ``categorical``: string columns to store as categoricals (pandas ``category`` and
        Arrow dictionary columns are categoricals anyway). ``name``: the frame's id (default
        a new one). Types: integers (up to 64 bits signed, 32 unsigned), floats, decimals,
        booleans, strings, timestamps and dates; others are refused before anything is sent."""
        from eddy import transfer

        table = transfer.as_arrow_table(data)
        frame_id = name or f"py_{uuid.uuid4().hex[:12]}.hex"
        info = transfer.write_table(self._request, table, frame_id, categorical, threads)
        return Frame(self, info["frame_id"])

    from_pandas = from_arrow
    from_polars = from_arrow

    def to_arrow(self, frame, threads: Optional[int] = None):
        """A frame as a ``pyarrow.Table`` (see :meth:`Frame.to_arrow`)."""
        from eddy import transfer

        access = self._request("POST", f"{frame_path(frame)}/grant", {"access": "read"})
        return transfer.read_frame(access, threads)

    def __repr__(self):
        return f"{type(self).__name__}({self.url})"


def _aggregates(aggs):
    if isinstance(aggs, dict):
        pairs = [(op, column) for column, ops in aggs.items() for op in ([ops] if isinstance(ops, str) else ops)]
    else:
        pairs = [tuple(a) for a in aggs]
    return [{"op": op, "column": column} for op, column in pairs]


def _progress_bar(wanted, description):
    """A tqdm bar of bytes, or None: not wanted, tqdm missing, or (by default) nowhere to show it."""
    if wanted is False:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        if wanted:
            raise EddyError("progress=True needs tqdm (pip install tqdm)") from None
        return None
    if wanted is None and not (_in_notebook() or sys.stderr.isatty()):
        return None
    return tqdm(total=None, unit="B", unit_scale=True, unit_divisor=1024, desc=description)


def _in_notebook():
    shell = sys.modules.get("IPython")
    ip = shell.get_ipython() if shell is not None and hasattr(shell, "get_ipython") else None
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


class Frame:
    """A frame of a cloud: its id and the client that reaches it. The data stays on the
    workers; methods ask the cloud, and ``to_arrow``/``to_pandas``/``to_polars`` bring the
    rows here. ``str(frame)`` is its id."""

    def __init__(self, client: Client, frame_id: str):
        self.client = client
        self.frame_id = frame_id

    def info(self) -> Dict[str, Any]:
        """The frame's metadata now: columns, rows, chunks and the workers holding them."""
        return self.client.frame_info(self.frame_id)

    @property
    def rows(self) -> int:
        """Rows."""
        return self.info()["rows"]

    @property
    def names(self) -> List[str]:
        """Column names."""
        return [c["name"] for c in self.info()["columns"]]

    def summary(self, bins: Optional[int] = None) -> Records:
        """Per column: type, count, missing, min, max, mean, sd, zeros, levels, histogram."""
        return self.client.summary(self, bins)

    def head(self, n: int = 10) -> Rows:
        """The first ``n`` rows as text (``to_pandas`` for typed values)."""
        return self.client.head(self, n)

    def to_arrow(self, threads: Optional[int] = None):
        """The frame as a ``pyarrow.Table``, its chunks read in parallel from the workers that
        hold them (``threads`` calls at once; default two per worker). Columns keep the types
        they came in with; categoricals are dictionary columns."""
        return self.client.to_arrow(self, threads)

    def to_pandas(self, threads: Optional[int] = None):
        """The frame as a pandas DataFrame (through :meth:`to_arrow`)."""
        return self.to_arrow(threads).to_pandas()

    def to_polars(self, threads: Optional[int] = None):
        """The frame as a polars DataFrame (through :meth:`to_arrow`)."""
        import polars

        return polars.from_arrow(self.to_arrow(threads))

    def group_by(self, by, aggs, name: Optional[str] = None) -> "Frame":
        """A new frame of ``aggs`` per group of ``by`` (see :meth:`Client.group_by`)."""
        return self.client.group_by(self, by, aggs, name)

    def export(self, url: str, format: str = "csv", single_file: bool = False) -> Dict[str, Any]:
        """Writes the frame as CSV or Parquet (see :meth:`Client.export`)."""
        return self.client.export(self, url, format, single_file)

    def delete(self) -> None:
        """Frees the frame on every node."""
        self.client.delete(self)

    def __str__(self):
        return self.frame_id

    def __repr__(self):
        return f"Frame({self.frame_id!r} on {self.client.url})"

    def __eq__(self, other):
        return isinstance(other, Frame) and (other.client.url, other.frame_id) == (self.client.url, self.frame_id)

    def __hash__(self):
        return hash((self.client.url, self.frame_id))


def connect(url: str, token: Optional[str] = None, timeout: float = 60, ca_file: Optional[str] = None) -> Client:
    """A :class:`Client` of the cloud at ``url``, checked to answer.

    ``token``: the cloud's access token (the driver prints it); ``ca_file``: the CA of an
    ``https://`` cloud whose certificate the system does not trust."""
    client = Client(url, token, timeout, ca_file)
    client.cloud()
    return client


class LocalCloud(Client):
    """A cloud of ``eddy-driver local`` workers on this machine, stopped with :meth:`stop`,
    at the end of a ``with`` block, or when this Python process ends, even killed (the
    driver stops the cloud when the pipe from this process closes).

    ``tls_cert``/``tls_key``: serve the REST API over HTTPS with this certificate; ``tls_ca``:
    the CA that signed it, trusted by this client and used by the internal channels."""

    def __init__(self, nodes=3, memory=None, timeout=120, tls_cert=None, tls_key=None, tls_ca=None):
        self._dir = tempfile.mkdtemp(prefix="eddy-local-")
        status_file = os.path.join(self._dir, "status.json")
        notify = os.path.join(self._dir, "leader")
        command = [
            find_binary("eddy-driver"), "local", "--nodes", str(nodes), "--port", "0",
            "--status-file", status_file, "--notify", notify, "--log-dir", os.path.join(self._dir, "logs"),
            # The driver holds the read end of a pipe only this process writes to: when this
            # process ends, even killed, the pipe closes and the cloud stops.
            "--stop-on-stdin-eof",
        ]
        if memory:
            command += ["--memory", str(memory)]
        for flag, value in (("--tls-cert", tls_cert), ("--tls-key", tls_key), ("--tls-ca", tls_ca)):
            if value:
                command += [flag, str(value)]
        self.log = os.path.join(self._dir, "driver.log")
        with open(self.log, "ab") as log:
            self._driver = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=log, stderr=log, start_new_session=True)
        atexit.register(self.stop)
        deadline = time.time() + timeout
        status = {}
        while time.time() < deadline:
            try:
                with open(status_file) as f:
                    status = json.load(f)
            except (OSError, ValueError):
                status = {}
            if status.get("phase") == "watching" or status.get("phase") == "failed" or self._driver.poll() is not None:
                break
            time.sleep(0.05)
        if status.get("phase") != "watching":
            reason = status.get("error") or f"not formed within {timeout} s"
            self.stop()
            raise EddyError(f"the local cloud did not start: {reason} (driver log: {self.log})")
        token = None
        with open(notify) as f:
            for line in f:
                if line.startswith("token="):
                    token = line.strip()[len("token="):]
        super().__init__(status["rest_url"], token, ca_file=tls_ca)
        self.nodes = [w["node"] for w in status["workers"]]

    def stop(self):
        """Stops the cloud (SIGTERM to the driver, which stops every worker in order)."""
        driver = getattr(self, "_driver", None)
        if driver is not None and driver.stdin is not None:
            driver.stdin.close()
        if driver is not None and driver.poll() is None:
            driver.terminate()
            try:
                driver.wait(timeout=30)
            except subprocess.TimeoutExpired:
                driver.kill()
                driver.wait()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start_local(nodes: int = 3, memory: Optional[str] = None, timeout: float = 120, tls_cert: Optional[str] = None,
                tls_key: Optional[str] = None, tls_ca: Optional[str] = None) -> LocalCloud:
    """A local cloud of ``nodes`` workers for notebooks and scripts, stopped when this
    process exits (see :class:`LocalCloud`). ``memory``: each worker's budget, e.g. ``"2g"``."""
    return LocalCloud(nodes, memory, timeout, tls_cert, tls_key, tls_ca)
