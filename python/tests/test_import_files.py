"""Files as users write them, imported by a real local cloud (``eddy-driver local``) and
compared with pyarrow's reading of the same file: RFC 4180 CSV written by Python's ``csv``
module with newlines inside quoted fields, read whole by one worker and split across two.
Needs the eddy wheel installed (scripts/spark-test.sh installs it)."""

import csv
import os
import tempfile
import unittest

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

import eddy


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
        with eddy.start_local(nodes=nodes, memory="1g") as cloud:
            job = cloud.import_job(self.path, timeout=120, **options)
            self.assertEqual(job["status"], "DONE", job)
            report = job["parse_report"]
            self.assertEqual((report["bad_rows"], report["bad_cells"]), (0, 0), report)
            out = os.path.join(self.dir.name, f"back-{nodes}.parquet")
            cloud.export(job["dest"], out, format="parquet", single_file=True)
            got = pq.read_table(out)
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
