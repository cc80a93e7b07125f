"""The REST API fuzzed from its own OpenAPI document with schemathesis against a real local
cloud (scripts/api-fuzz.sh runs this with the schemathesis venv's Python). No answer may be a
server error, and the cloud must still be one healthy cloud afterwards. A frame is imported
first so that the frame operations get past 404. Bounded: every wait has a deadline."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

BIN_DIR = os.environ.get("EDDY_BIN_DIR", os.path.join(os.getcwd(), "target", "debug"))
EXAMPLES = os.environ.get("EDDY_FUZZ_EXAMPLES", "25")


def call(url, token, method="GET", body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def wait_for(what, seconds, probe):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.25)
    raise SystemExit(f"api-fuzz: {what} did not happen within {seconds} s")


def main():
    work = tempfile.mkdtemp(prefix="eddy-api-fuzz-")
    roots = os.path.join(work, "roots")
    os.makedirs(roots)
    shutil.copy("data/sample.csv", roots)
    status_file, notify = os.path.join(work, "status.json"), os.path.join(work, "notify")
    log = open(os.path.join(work, "driver.log"), "w")
    # Local imports only from `roots`: fuzzed paths cannot make the node read the machine.
    driver = subprocess.Popen(
        [os.path.join(BIN_DIR, "eddy-driver"), "local", "--nodes", "2", "--port", "0", "--import-roots", roots,
         "--status-file", status_file, "--notify", notify, "--log-dir", os.path.join(work, "logs")],
        stdout=log, stderr=log, env=dict(os.environ, EDDY_MAPPER_BIN=os.path.join(BIN_DIR, "eddy-mapper")),
    )
    try:
        def formed():
            try:
                with open(status_file) as f:
                    s = json.load(f)
                return s if s.get("phase") == "watching" else None
            except (OSError, ValueError):
                return None

        status = wait_for("the cloud forming", 120, formed)
        with open(notify) as f:
            token = next(line.split("=", 1)[1].strip() for line in f if line.startswith("token="))
        base = status["rest_url"]
        job = call(f"{base}/3/ImportFiles", token, "POST", {"path": os.path.join(roots, "sample.csv"), "destination_frame": "sample.hex"})
        key = job["job"]["key"]
        wait_for("the sample's import", 120, lambda: call(f"{base}/3/Jobs/{key}", token)["jobs"][0]["status"] == "DONE")
        config = os.path.join(work, "schemathesis.toml")
        with open(config, "w") as f:
            f.write('[parameters]\nid = "sample.hex"\n')
        command = [
            os.path.join(os.path.dirname(sys.executable), "st"), "--config-file", config, "run", f"{base}/openapi.json",
            "-H", f"Authorization: Bearer {token}", "--exclude-path", "/3/Shutdown",
            "--checks", "not_a_server_error", "--max-examples", EXAMPLES, "--request-timeout", "30", "--no-color",
        ]
        print("== schemathesis", " ".join(c if token not in c else "Authorization: Bearer ***" for c in command[3:]), flush=True)
        fuzzed = subprocess.run(command, timeout=900, cwd=work)
        cloud = call(f"{base}/3/Cloud", token)
        healthy = cloud["cloud_healthy"] and cloud["cloud_size"] == 2
        print(f"== after fuzzing: cloud of {cloud['cloud_size']}, healthy: {cloud['cloud_healthy']}")
        call(f"{base}/3/Shutdown", token, "POST")
        driver.wait(timeout=60)
        if fuzzed.returncode != 0 or not healthy:
            with open(os.path.join(work, "driver.log")) as f:
                print(f.read()[-4000:])
            raise SystemExit(f"api-fuzz: schemathesis exit code {fuzzed.returncode}, cloud healthy: {healthy}")
    finally:
        if driver.poll() is None:
            driver.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
