"""``eddy.connect`` and ``eddy.start_local`` against a real local cloud (``eddy-driver
local``): the cloud, an import, its summary and first rows, export, delete, errors with the
server's message, and shutdown. Needs the eddy wheel installed (scripts/spark-test.sh installs it)."""

import os
import subprocess
import tempfile
import unittest

import pyarrow.csv as pacsv

import eddy

SAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "data", "sample.csv")


class ClientAgainstALocalCloud(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cloud = eddy.start_local(nodes=2, memory="256m")

    @classmethod
    def tearDownClass(cls):
        cls.cloud.stop()

    def test_any_node_serves_the_cloud_frames_and_jobs(self):
        # A second client by URL and token, as for a cloud someone else started.
        client = eddy.connect(self.cloud.url, token=self.cloud.rest_token)
        cloud = client.cloud()
        self.assertEqual((cloud["cloud_size"], cloud["cloud_healthy"]), (2, True))
        self.assertEqual(sorted(n["ip_port"] for n in cloud["nodes"]), sorted(self.cloud.nodes))

        frame = client.import_file(SAMPLE, name="sample_client")
        self.assertEqual(str(frame), "sample_client")
        self.assertIn("sample_client", [f["frame_id"] for f in client.frames()])
        expected = pacsv.read_csv(SAMPLE)
        self.assertEqual(client.frame_info(frame)["rows"], expected.num_rows)
        summary = {c["label"]: c for c in client.summary(frame)}
        self.assertEqual(sorted(summary), sorted(expected.column_names))
        self.assertEqual(summary["i1"]["min"], 0)
        head = client.head(frame, 3)
        self.assertEqual(len(head), 3)
        self.assertEqual([row[0] for row in head], [str(v) for v in expected.column("i1").to_pylist()[:3]])

        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "back.csv")
            client.export(frame, out, single_file=True)
            self.assertEqual(pacsv.read_csv(out).num_rows, expected.num_rows)

        client.delete(frame)
        self.assertNotIn(frame, [f["frame_id"] for f in client.frames()])

    def test_errors_carry_the_servers_message(self):
        with self.assertRaises(eddy.EddyError) as missing:
            self.cloud.summary("no_such_frame")
        self.assertIn("404", str(missing.exception))
        self.assertIn("no_such_frame", str(missing.exception))
        with self.assertRaises(eddy.EddyError) as anonymous:
            eddy.connect(self.cloud.url)
        self.assertIn("401", str(anonymous.exception))
        self.assertIn("token", str(anonymous.exception))
        with self.assertRaises(eddy.EddyError) as wrong:
            eddy.connect("ftp://example")
        self.assertIn("http://HOST:PORT", str(wrong.exception))
        failed = self.cloud.import_job("/no/such/file.csv")
        self.assertEqual(failed["status"], "FAILED", failed)
        with self.assertRaises(eddy.EddyError) as raised:
            self.cloud.import_file("/no/such/file.csv")
        self.assertIn("/no/such/file.csv", str(raised.exception))


def _user_pki(directory, name):
    """A CA and a certificate it signed for 127.0.0.1, made with the openssl command."""
    ca_key, ca, key, csr, cert = (os.path.join(directory, f"{name}-{p}") for p in ("ca.key", "ca.pem", "node.key", "node.csr", "node.pem"))
    ext = os.path.join(directory, f"{name}.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", ca_key, "-out", ca,
        "-days", "2", "-subj", f"/CN={name} test CA")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=node")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext)
    return ca, cert, key


class Https(unittest.TestCase):
    def test_a_cloud_with_your_certificate_serves_https_and_the_client_checks_it(self):
        with tempfile.TemporaryDirectory() as d:
            ca, cert, key = _user_pki(d, "user")
            other_ca, _, _ = _user_pki(d, "other")
            with eddy.start_local(nodes=1, memory="256m", tls_cert=cert, tls_key=key, tls_ca=ca) as cloud:
                self.assertTrue(cloud.url.startswith("https://127.0.0.1:"), cloud.url)
                self.assertEqual(cloud.cloud()["cloud_size"], 1)
                self.assertEqual(eddy.connect(cloud.url, token=cloud.rest_token, ca_file=ca).cloud()["cloud_size"], 1)
                with self.assertRaises(eddy.EddyError) as untrusted:
                    eddy.connect(cloud.url, token=cloud.rest_token, ca_file=other_ca)
                self.assertIn("ca_file", str(untrusted.exception))


class StartLocalAndShutdown(unittest.TestCase):
    def test_shutdown_stops_the_cloud_and_the_driver(self):
        cloud = eddy.start_local(nodes=1, memory="256m")
        try:
            cloud.shutdown()
            cloud._driver.wait(timeout=30)
            self.assertEqual(cloud._driver.returncode, 0)
            with self.assertRaises(eddy.EddyError) as gone:
                cloud.cloud()
            self.assertIn("cannot reach", str(gone.exception))
        finally:
            cloud.stop()
        self.assertFalse(os.path.exists(cloud._dir))


if __name__ == "__main__":
    unittest.main()
