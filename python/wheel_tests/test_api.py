"""The eddy wheel as a user installs it: run by scripts/python-test.sh in a fresh venv that
holds only the wheel and its extras (no EDDY_BIN_DIR, nothing of this repository on the path).
A local cloud started from Python, the API end to end, and its errors."""

import contextlib
import datetime
import decimal
import io
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
import unittest

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.flight as fl
import pyarrow.parquet as pq

import eddy
from eddy import transfer

SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "data", "sample.csv")


class InstalledFromTheWheel(unittest.TestCase):
    def test_the_package_and_its_binaries_come_from_the_venv(self):
        site = sysconfig.get_paths()["purelib"]
        self.assertTrue(eddy.__file__.startswith(site), eddy.__file__)
        self.assertNotIn("EDDY_BIN_DIR", os.environ)
        for name in ("eddy-driver", "eddy-mapper"):
            self.assertEqual(eddy.find_binary(name), os.path.join(site, "eddy", "bin", name))
        scripts = sysconfig.get_paths()["scripts"]
        for command in ([os.path.join(scripts, "eddy-driver"), "--version"], [os.path.join(scripts, "eddy-mapper"), "--version"],
                        [sys.executable, "-m", "eddy", "--version"]):
            out = subprocess.run(command, capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn("0.1.0", out.stdout)
        self.assertIn("start_local", eddy.__doc__)


class ALocalCloudEndsWithItsProcess(unittest.TestCase):
    def test_a_killed_python_process_takes_its_local_cloud_with_it(self):
        script = (
            "import eddy, json, os, signal\n"
            "ec = eddy.start_local(nodes=1, memory='256m')\n"
            "print(json.dumps({'driver': ec._driver.pid, 'url': ec.url, 'token': ec.rest_token}), flush=True)\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n"
        )
        child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
        self.assertEqual(child.returncode, -9, child.stderr)
        started = json.loads(child.stdout)
        deadline = time.time() + 60
        while time.time() < deadline and _running(started["driver"]):
            time.sleep(0.2)
        self.assertFalse(_running(started["driver"]), "the driver outlived the process that started it")
        with self.assertRaises(eddy.EddyError):
            eddy.connect(started["url"], token=started["token"], timeout=5)


def _running(pid):
    """Alive and not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"
    except OSError:
        return False


def every_type():
    """A pandas DataFrame of every type a frame holds, with missing values where the type has them."""
    n = 1000
    rng = range(n)
    missing = lambda v, i: None if i % 7 == 3 else v  # noqa: E731
    return pd.DataFrame({
        "i8": pd.array([i % 100 - 50 for i in rng], dtype="int8"),
        "i16": pd.array([i * 30 - 15000 for i in rng], dtype="int16"),
        "i32": pd.array([missing(i * 1000, i) for i in rng], dtype="Int32"),
        "i64": pd.array([i * 10**12 for i in rng], dtype="int64"),
        "u8": pd.array([i % 256 for i in rng], dtype="uint8"),
        "u16": pd.array([i * 60 for i in rng], dtype="uint16"),
        "u32": pd.array([i * 4_000_000 for i in rng], dtype="uint32"),
        "f32": pd.array([i / 8 for i in rng], dtype="float32"),
        "f64": [missing(i / 3, i) for i in rng],
        "flag": pd.array([missing(i % 2 == 0, i) for i in rng], dtype="boolean"),
        "text": pd.array([missing(f"row {i} ünïcode", i) for i in rng], dtype="string"),
        "level": pd.Categorical([f"level {i % 5}" for i in rng]),
        "when": pd.to_datetime([1_600_000_000_000_000_000 + i * 10**9 for i in rng]),
        "when_utc": pd.to_datetime([1_600_000_000_000_000_000 + i * 10**9 for i in rng], utc=True),
        "day": [datetime.date(2020, 1, 1) + datetime.timedelta(days=i) for i in rng],
        "price": [decimal.Decimal(f"{i}.{i % 100:02d}") for i in rng],
    })


class TheApiAgainstALocalCloud(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ec = eddy.start_local(nodes=2, memory="512m")

    @classmethod
    def tearDownClass(cls):
        cls.ec.stop()

    def test_import_summary_head_and_to_arrow_equal_pyarrows_read(self):
        expected = pacsv.read_csv(SAMPLE)
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            f = self.ec.import_file(SAMPLE, name="sample", progress=True)
        self.assertIn("import sample.csv", stderr.getvalue())
        self.assertEqual(str(f), "sample")
        self.assertIn("sample", [x["frame_id"] for x in self.ec.frames()])
        self.assertEqual((f.rows, f.names), (expected.num_rows, expected.column_names))
        self.assertIn("cloud_size", self.ec.cloud())
        self.assertIn("2 nodes, healthy", str(self.ec.cloud()))

        summary = {c["label"]: c for c in f.summary()}
        self.assertEqual(summary["i1"]["max"], max(expected.column("i1").to_pylist()))
        self.assertEqual(summary["f1"]["missing"], expected.column("f1").null_count)
        head = f.head(3)
        self.assertEqual(head.names, expected.column_names)
        self.assertEqual([r[0] for r in head], [str(v) for v in expected.column("i1").to_pylist()[:3]])

        got = f.to_arrow()
        self.assertEqual(got.num_rows, expected.num_rows)
        self.assertTrue(pa.types.is_dictionary(got.schema.field("c10").type), got.schema)
        for name in expected.column_names:
            want = expected.column(name)
            have = got.column(name).cast(pa.string()) if pa.types.is_dictionary(got.schema.field(name).type) else got.column(name)
            self.assertEqual(have.cast(want.type).to_pylist(), want.to_pylist(), name)

        pdf = f.to_pandas()
        self.assertEqual(list(pdf.columns), expected.column_names)
        self.assertEqual(pdf["c10"].dtype.name, "category")
        self.assertEqual(f.to_polars().shape, (expected.num_rows, expected.num_columns))

        grouped = f.group_by("c10", {"i4": ["sum", "max"]}, name="by_c10").to_pandas().set_index("c10")
        want = expected.to_pandas().groupby("c10")["i4"].agg(["sum", "max"])
        self.assertEqual(sorted(grouped.index.astype(str)), sorted(want.index))
        for level in want.index:
            self.assertEqual(grouped.loc[level, "sum_i4"], want.loc[level, "sum"])

        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "back.parquet")
            f.export(out, format="parquet", single_file=True)
            self.assertEqual(pq.read_table(out).num_rows, expected.num_rows)
        f.delete()
        self.assertNotIn("sample", [x["frame_id"] for x in self.ec.frames()])

    def test_from_pandas_round_trips_every_supported_type(self):
        df = every_type()
        frame = self.ec.from_pandas(df, name="every_type")
        info = frame.info()
        self.assertEqual(info["rows"], len(df))
        self.assertEqual(len({c["node"]["rest_port"] for c in info["chunks"]}), 2, "chunks on both workers")
        sent = pa.Table.from_pandas(df, preserve_index=False)
        got = frame.to_arrow()
        self.assertEqual(got.column_names, sent.column_names)
        for name in sent.column_names:
            want_type, got_type = sent.schema.field(name).type, got.schema.field(name).type
            if pa.types.is_dictionary(want_type):
                self.assertTrue(pa.types.is_dictionary(got_type), f"{name}: {got_type}")
            else:
                self.assertEqual(got_type, want_type, name)
            self.assertEqual(got.column(name).to_pylist(), sent.column(name).to_pylist(), name)
        back = frame.to_pandas()
        pd.testing.assert_series_equal(back["level"].astype(str), df["level"].astype(str))
        pd.testing.assert_series_equal(back["when_utc"], df["when_utc"])

    def test_from_polars_and_arrow_tables(self):
        data = pl.DataFrame({"k": ["a", "b", None] * 100, "v": list(range(300))})
        frame = self.ec.from_polars(data)
        self.assertTrue(frame.frame_id.startswith("py_"), frame.frame_id)
        self.assertTrue(frame.to_polars().equals(data))
        odd = self.ec.from_arrow(pa.table({"x": [1, 2]}), name="odd id?#/ %2F x")
        self.assertEqual(self.ec.frame("odd id?#/ %2F x").to_arrow().column("x").to_pylist(), [1, 2])
        self.assertEqual(odd.head(1)[0], ["1"])
        odd.delete()
        self.assertNotIn("odd id?#/ %2F x", [x["frame_id"] for x in self.ec.frames()])
        empty = self.ec.from_arrow(pa.table({"x": pa.array([], pa.int64())}), name="empty")
        self.assertEqual((empty.rows, empty.to_arrow().num_rows), (0, 0))

    def test_errors_carry_the_servers_message(self):
        with self.assertRaises(eddy.EddyError) as bad:
            self.ec.import_file("/no/such/dir/file.csv")
        self.assertIn("/no/such/dir/file.csv", str(bad.exception))
        with self.assertRaises(eddy.EddyError) as missing:
            self.ec.frame("no_such_frame")
        self.assertIn("404", str(missing.exception))
        with self.assertRaises(eddy.EddyError) as gone:
            eddy.connect("http://127.0.0.1:9")
        self.assertIn("cannot reach", str(gone.exception))
        with self.assertRaises(TypeError) as unsupported:
            self.ec.from_arrow(pa.table({"blob": pa.array([b"x"], pa.binary())}), name="blob")
        self.assertIn("'blob'", str(unsupported.exception))
        self.assertNotIn("blob", [x["frame_id"] for x in self.ec.frames()])
        with self.assertRaises(eddy.EddyError) as taken:
            self.ec.from_arrow(pa.table({"x": [1]}), name="taken")
            self.ec.from_arrow(pa.table({"x": [2]}), name="taken")
        self.assertIn("exists", str(taken.exception))
        self.assertEqual(self.ec.frame("taken").to_arrow().column("x").to_pylist(), [1], "the first frame stays")

    def test_a_grant_reaches_only_its_frame(self):
        self.ec.from_arrow(pa.table({"x": [1, 2, 3]}), name="mine")
        self.ec.from_arrow(pa.table({"y": [4]}), name="theirs")
        access = self.ec._request("POST", "/3/Frames/mine/grant", {"access": "read"})
        chunk = access["frame"]["chunks"][0]
        client = transfer.flight_client(chunk["node"]["ip"], chunk["node"]["grpc_port"], access["tls_ca"])
        self.assertIsNotNone(access["tls_ca"], "internal TLS is on by default")
        options = fl.FlightCallOptions(headers=[(b"x-eddy-grant", access["grant"].encode())])
        ticket = lambda frame: fl.Ticket(json.dumps({"frame_id": frame, "chunk": 0}).encode())  # noqa: E731
        self.assertGreater(client.do_get(ticket("mine"), options).read_all().num_rows, 0)
        with self.assertRaises(fl.FlightError) as other:
            client.do_get(ticket("theirs"), options).read_all()
        self.assertIn("not \"theirs\"", str(other.exception))
        with self.assertRaises(fl.FlightError) as anonymous:
            client.do_get(ticket("mine")).read_all()
        self.assertIn("no authentication token or grant", str(anonymous.exception))
        forged = fl.FlightCallOptions(headers=[(b"x-eddy-grant", access["grant"].replace("read", "write", 1).encode())])
        with self.assertRaises(fl.FlightError) as widened:
            client.do_put(fl.FlightDescriptor.for_command(b'{"frame_id": "mine2", "chunk": 0}'), pa.schema([("x", pa.int64())]), forged)[0].close()
        self.assertIn("not signed by this cloud", str(widened.exception))
        client.close()


if __name__ == "__main__":
    unittest.main()
