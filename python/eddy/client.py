"""A client for any running Eddy cloud, over its REST API.

``eddy.connect(url, token=...)`` reaches a cloud however it was started (``eddy-driver local``,
``yarn``, ``ssh``, Kubernetes, standalone workers); ``eddy.start_local(nodes=3)`` starts a
local cloud tied to this Python process. Errors are :class:`EddyError` with the server's
message. Only the standard library is used, so the client works without pyarrow or Spark.
"""

import atexit
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from eddy.binaries import find_binary


class EddyError(RuntimeError):
    """Something about the cloud failed; the message says what and what to do."""


def _frame_id(frame):
    return frame if isinstance(frame, str) else frame["frame_id"]


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

    def cloud(self):
        """``GET /3/Cloud``: name, size, health, leader, members (H2O's field names)."""
        return self._request("GET", "/3/Cloud", timeout=10)

    def shutdown(self):
        """Stops every node of the cloud."""
        self._request("POST", "/3/Shutdown", timeout=10)

    # -- frames --------------------------------------------------------------------------

    def frames(self):
        """Every frame: ``GET /3/Frames``."""
        return self._request("GET", "/3/Frames")["frames"]

    def frame(self, frame):
        """A frame's metadata (columns, chunks and where they live)."""
        return self._request("GET", f"/3/Frames/{_frame_id(frame)}?row_count=0")["frame"]

    def head(self, frame, n=10):
        """The first ``n`` rows as lists of strings (``None`` for missing values)."""
        return self._request("GET", f"/3/Frames/{_frame_id(frame)}?row_offset=0&row_count={int(n)}")["rows"]

    def summary(self, frame):
        """Per column: type, count, missing, min, max, mean, sd, zeros; levels for categoricals."""
        return self._request("GET", f"/3/Frames/{_frame_id(frame)}/summary")["columns"]

    def delete(self, frame):
        """Frees a frame on every node."""
        self._request("DELETE", f"/3/Frames/{_frame_id(frame)}")

    def import_file(self, path, name=None, timeout=3600, **options):
        """Imports a file, directory or glob (local, ``s3://``, ``hdfs://``...) into a frame;
        returns its id. ``options`` go into the import request (``parse_setup``, ``strict``, ``format``)."""
        job = self.import_job(path, name, timeout, **options)
        if job["status"] != "DONE":
            raise EddyError(f"import of {path} failed: {job['error']}")
        return job["dest"]

    def import_job(self, path, name=None, timeout=3600, **options):
        """Like :meth:`import_file`, but returns the finished job (``status``, ``dest``,
        ``error``, ``parse_report`` with the bad values counted and examples) instead of raising."""
        body = dict(options, path=path)
        if name:
            body["destination_frame"] = name
        job = self._request("POST", "/3/ImportFiles", body)["job"]["key"]
        deadline = time.time() + timeout
        while time.time() < deadline:
            state = self._request("GET", f"/3/Jobs/{job}")["jobs"][0]
            if state["status"] != "RUNNING":
                return state
            time.sleep(0.1)
        raise EddyError(f"import of {path} did not finish within {timeout} s; it keeps running as {job}")

    def export(self, frame, url, format="csv", single_file=False):
        """Writes a frame as CSV or Parquet to a path or URL (``s3://``, ``hdfs://``...)."""
        body = {"path": url, "format": format, "single_file": bool(single_file)}
        return self._request("POST", f"/3/Frames/{_frame_id(frame)}/export", body)

    def __repr__(self):
        return f"{type(self).__name__}({self.url})"


def connect(url, token=None, timeout=60, ca_file=None):
    """A :class:`Client` of the cloud at ``url``, checked to answer."""
    client = Client(url, token, timeout, ca_file)
    client.cloud()
    return client


class LocalCloud(Client):
    """A cloud of ``eddy-driver local`` workers on this machine, stopped with :meth:`stop`,
    at the end of a ``with`` block, or when this Python process exits.

    ``tls_cert``/``tls_key``: serve the REST API over HTTPS with this certificate; ``tls_ca``:
    the CA that signed it, trusted by this client and used by the internal channels."""

    def __init__(self, nodes=3, memory=None, timeout=120, tls_cert=None, tls_key=None, tls_ca=None):
        self._dir = tempfile.mkdtemp(prefix="eddy-local-")
        status_file = os.path.join(self._dir, "status.json")
        notify = os.path.join(self._dir, "leader")
        command = [
            find_binary("eddy-driver"), "local", "--nodes", str(nodes), "--port", "0",
            "--status-file", status_file, "--notify", notify, "--log-dir", os.path.join(self._dir, "logs"),
        ]
        if memory:
            command += ["--memory", str(memory)]
        for flag, value in (("--tls-cert", tls_cert), ("--tls-key", tls_key), ("--tls-ca", tls_ca)):
            if value:
                command += [flag, str(value)]
        self.log = os.path.join(self._dir, "driver.log")
        with open(self.log, "ab") as log:
            self._driver = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
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


def start_local(nodes=3, memory=None, timeout=120, tls_cert=None, tls_key=None, tls_ca=None):
    """A local cloud of ``nodes`` workers for notebooks and scripts (see :class:`LocalCloud`)."""
    return LocalCloud(nodes, memory, timeout, tls_cert, tls_key, tls_ca)
