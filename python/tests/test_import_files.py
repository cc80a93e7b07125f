"""Files as users write them, imported by a real local cloud (``eddy-driver local``) and
compared with pyarrow's reading of the same file: RFC 4180 CSV written by Python's ``csv``
module with newlines inside quoted fields, read whole by one worker and split across two.
Needs EDDY_BIN_DIR pointing at the built binaries (scripts/spark-test.sh sets it)."""

import csv
import json
import os
import subprocess
import tempfile
import time
import unittest
import urllib.request

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from eddy.binaries import find_binary


def _http(method, url, body=None, timeout=60, token=None):
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        return json.loads(reply.read() or b"null")


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


class LocalCloud:
    """``eddy-driver local`` with N workers on free ports, stopped on exit."""

    def __init__(self, nodes, workdir):
        self.notify = os.path.join(workdir, f"leader-{nodes}.txt")
        self.log = open(os.path.join(workdir, f"driver-{nodes}.log"), "w")
        self.process = subprocess.Popen(
            [find_binary("eddy-driver"), "local", "--nodes", str(nodes), "--port", "0", "--memory", "1g", "--notify", self.notify],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.time() + 60
        while not _read(self.notify).endswith("\n"):
            if time.time() > deadline or self.process.poll() is not None:
                raise AssertionError(f"the cloud did not form: {_read(self.log.name)}")
            time.sleep(0.1)
        lines = _read(self.notify).split()
        self.base = "http://" + lines[0]
        # The driver writes the REST access token after the leader's address.
        self.token = next(line[len("token="):] for line in lines if line.startswith("token="))

    def import_file(self, path, **options):
        job = _http("POST", f"{self.base}/3/ImportFiles", {"path": path, **options}, token=self.token)["job"]["key"]
        deadline = time.time() + 120
        while time.time() < deadline:
            state = _http("GET", f"{self.base}/3/Jobs/{job}", token=self.token)["jobs"][0]
            if state["status"] != "RUNNING":
                return state
            time.sleep(0.1)
        raise AssertionError(f"import of {path} did not finish")

    def export_parquet(self, frame, path):
        _http("POST", f"{self.base}/3/Frames/{frame}/export", {"path": path, "format": "parquet", "single_file": True}, token=self.token)
        return pq.read_table(path)

    def stop(self):
        try:
            _http("POST", f"{self.base}/3/Shutdown", {}, token=self.token)
        except OSError:
            pass
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.log.close()


def write_notes_csv(path, rows):
    """200,000 rows by Python's csv module; every tenth note holds a newline (some a CRLF),
    others commas and quotes."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "note", "x"])
        for i in range(rows):
            if i % 10 == 0:
                note = f"line {i}\nsaid \"hi\", then left"
            elif i % 10 == 5:
                note = f"crlf {i}\r\nsecond"
            else:
                note = f"plain {i}"
            w.writerow([i, note, (i * 37) % 1000 / 8])


class ImportLikePyarrow(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.path = os.path.join(cls.dir.name, "notes.csv")
        write_notes_csv(cls.path, 200_000)
        cls.expected = pacsv.read_csv(cls.path, parse_options=pacsv.ParseOptions(newlines_in_values=True))

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def check_cloud(self, nodes, **options):
        cloud = LocalCloud(nodes, self.dir.name)
        try:
            job = cloud.import_file(self.path, **options)
            self.assertEqual(job["status"], "DONE", job)
            report = job["parse_report"]
            self.assertEqual((report["bad_rows"], report["bad_cells"]), (0, 0), report)
            out = os.path.join(self.dir.name, f"back-{nodes}.parquet")
            got = cloud.export_parquet(job["dest"], out)
        finally:
            cloud.stop()
        self.assertEqual(got.num_rows, self.expected.num_rows)
        self.assertEqual(got.column("id").cast(pa.int64()).to_pylist(), self.expected.column("id").to_pylist())
        self.assertEqual(got.column("note").cast(pa.string()).to_pylist(), self.expected.column("note").to_pylist())
        self.assertEqual(got.column("x").cast(pa.float64()).to_pylist(), self.expected.column("x").to_pylist())

    def test_quoted_newlines_on_one_worker(self):
        self.check_cloud(1)

    def test_quoted_newlines_split_across_two_workers(self):
        # Small splits: many start inside a quoted field.
        self.check_cloud(2, split_bytes=65536)


if __name__ == "__main__":
    unittest.main()
