"""Traffic of bench/soak.sh against a running `bcdi-hosting serve`: mixed GET / POST / upload
traffic for a bounded time, a report every interval (latency per kind of request, the server's
resident memory), and at the end a check that nothing accepted was lost.

Workers (threads, one keep-alive connection each) loop over a weighted mix:
  read      GET /v1/establishments/{rne} and its history, with the cyber key
  create    POST /v1/establishments, a new establishment (or, one time in five, the same body
            again: a re-key, whose new key is kept)
  upload    for an establishment in status 2, E2 or 4: an upload session, a file, its part
            PUT to the presigned URL, completion, and submit (mounting)
One more thread is the hosting agent: it claims install and mount jobs (operator key) and
succeeds them, so that establishments go 1 → 2 → 3 → 4 as on a real deployment.

With --data-dir, each report also counts the workflow executions still running (most wait for
the agent's callback), read from the server's workflows.sqlite3: what memory would grow with
if the executor kept them in memory.

Loopback only, bounded by --seconds. Standard library only.
"""

import argparse
import http.client
import io
import json
import os
import random
import sqlite3
import sys
import threading
import time
import urllib.parse
import zipfile

CHECK_LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"


def rne_for(number):
    digits = f"{number:07d}"
    return digits + CHECK_LETTERS[int(digits) % 23]


def archive():
    """A small valid base archive: a folder with NOTICES.DAT."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zip_file:
        zip_file.writestr("data/NOTICES.DAT", os.urandom(4096) + b"\0" * 60000)
        zip_file.writestr("data/LECTEURS.DAT", b"\0" * 20000)
    return buffer.getvalue()


class Client:
    """One keep-alive HTTP/1.1 connection to the server."""

    def __init__(self, host, port):
        self.host, self.port = host, port
        self.connection = None

    def request(self, method, path, key=None, body=None, raw=None, host=None, port=None):
        headers = {}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in range(2):
            try:
                if host is not None:
                    connection = http.client.HTTPConnection(host, port, timeout=60)
                else:
                    if self.connection is None:
                        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
                    connection = self.connection
                connection.request(method, path, body=data, headers=headers)
                response = connection.getresponse()
                payload = response.read()
                if host is not None:
                    connection.close()
                try:
                    parsed = json.loads(payload) if payload else None
                except ValueError:
                    parsed = None
                return response.status, parsed, response.headers
            except (ConnectionError, http.client.HTTPException, OSError):
                self.connection = None
                if attempt == 1:
                    raise


class Stats:
    """Latencies per kind of request, per reporting window and in total."""

    def __init__(self):
        self.lock = threading.Lock()
        self.window = {}
        self.total = {}
        self.errors = {}

    def record(self, kind, seconds, status):
        with self.lock:
            self.window.setdefault(kind, []).append(seconds)
            self.total.setdefault(kind, []).append(seconds)
            if status >= 500:
                self.errors[f"{kind} {status}"] = self.errors.get(f"{kind} {status}", 0) + 1

    def take_window(self):
        with self.lock:
            window, self.window = self.window, {}
            return window


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def running_executions(data_dir):
    """Executions RUNNING in the server's workflow store, or None without --data-dir."""
    if not data_dir:
        return None
    try:
        db = sqlite3.connect(f"file:{data_dir}/workflows.sqlite3?mode=ro", uri=True, timeout=5)
        try:
            return db.execute("SELECT count(*) FROM asl_executions WHERE status = 'RUNNING'").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return None


class Soak:
    def __init__(self, args):
        self.args = args
        self.stats = Stats()
        self.lock = threading.Lock()
        self.accepted = {}  # rne → body of the accepted creation
        self.files = {}  # rne → ids of completed files
        self.next_number = random.randrange(1_000_000, 8_000_000)
        self.stop = threading.Event()
        self.archive = archive()

    def timed(self, client, kind, *request, **options):
        started = time.monotonic()
        status, body, headers = client.request(*request, **options)
        self.stats.record(kind, time.monotonic() - started, status)
        return status, body, headers

    def new_rne(self):
        with self.lock:
            self.next_number += 1
            return rne_for(self.next_number)

    def pick(self):
        with self.lock:
            return random.choice(list(self.accepted)) if self.accepted else None

    def create(self, client):
        again = self.pick() if random.random() < 0.2 else None
        rne = again or self.new_rne()
        body = self.accepted.get(rne) or {
            "rne": rne,
            "griffe": f"Collège soak {rne}",
            "code": "SOAK" + rne,
            "version": random.choice(["CL", "SP"]),
        }
        status, answer, _ = self.timed(client, "POST establishment", "POST", "/v1/establishments",
                                       self.args.cyber_key, body)
        if status == 200:
            with self.lock:
                self.accepted[rne] = body

    def read(self, client):
        rne = self.pick()
        if rne is None:
            return
        self.timed(client, "GET establishment", "GET", f"/v1/establishments/{rne}", self.args.cyber_key)
        if random.random() < 0.3:
            self.timed(client, "GET history", "GET", f"/v1/establishments/{rne}/history",
                       self.args.cyber_key)

    def upload(self, client):
        rne = self.pick()
        if rne is None:
            return
        status, answer, _ = client.request("GET", f"/v1/establishments/{rne}", self.args.cyber_key)
        if status != 200 or answer["status"] not in ("2", "E2", "4"):
            return
        status, session, _ = self.timed(client, "POST upload-session", "POST",
                                        f"/v1/establishments/{rne}/upload-sessions",
                                        self.args.cyber_key, {})
        if status != 201:
            return
        token = session["url"].split("#token=")[1]
        status, listing, _ = client.request("GET", "/v1/upload/session", token)
        for old in (listing or {}).get("files", []):
            # Keep under the file limit: the school replaces its archive.
            if old["state"] == "complete" and random.random() < 0.5:
                self.timed(client, "DELETE file", "DELETE", f"/v1/upload/files/{old['id']}", token)
        status, file, _ = self.timed(client, "POST file", "POST", "/v1/upload/files", token,
                                     {"name": "data.zip", "size": len(self.archive), "base": "Principale"})
        if status != 201:
            return
        status, urls, _ = self.timed(client, "POST part-urls", "POST",
                                     f"/v1/upload/files/{file['id']}/part-urls", token, {"parts": [1]})
        if status != 200:
            return
        url = urllib.parse.urlsplit(urls["urls"][0]["url"])
        status, _, headers = self.timed(client, "PUT part", "PUT", url.path + "?" + url.query,
                                        raw=self.archive, host=url.hostname, port=url.port)
        if status != 200:
            return
        etag = headers["ETag"]
        status, _, _ = self.timed(client, "POST complete", "POST",
                                  f"/v1/upload/files/{file['id']}/complete", token,
                                  {"parts": [{"part": 1, "etag": etag}]})
        if status == 200:
            with self.lock:
                self.files.setdefault(rne, []).append(file["id"])
            self.timed(client, "POST submit", "POST", "/v1/upload/submit", token, {})

    def worker(self):
        client = Client("127.0.0.1", self.args.port)
        actions = [self.read] * 6 + [self.create] * 3 + [self.upload]
        while not self.stop.is_set():
            try:
                random.choice(actions)(client)
            except Exception as error:  # noqa: BLE001 — counted, the soak goes on
                self.stats.record(f"client error {type(error).__name__}", 0, 599)

    def agent(self):
        client = Client("127.0.0.1", self.args.port)
        key = self.args.operator_key
        while not self.stop.is_set():
            try:
                status, job, _ = self.timed(client, "POST claim", "POST", "/v1/agent/jobs/claim", key,
                                            {"kinds": ["install", "mount"], "wait_seconds": 1})
                if status != 200:
                    continue
                host = f"bcdi-{job['rne'].lower()}.soak.example.org"
                if job["kind"] == "install":
                    result = {"host": host, "port": 8000}
                else:
                    result = {
                        "connection": {"host": host, "port": 8000,
                                       "client_download_url": "https://soak.example.org/client.zip"},
                        "bases": [{"name": base["name"], "state": "INSTALLED"}
                                  for base in job["input"].get("bases", [])],
                    }
                self.timed(client, "POST succeed", "POST", f"/v1/agent/jobs/{job['id']}/succeed", key,
                           {"result": result})
            except Exception as error:  # noqa: BLE001
                self.stats.record(f"agent error {type(error).__name__}", 0, 599)

    def report(self, elapsed, window):
        kinds = sorted(window)
        total = sum(len(values) for values in window.values())
        line = f"{elapsed:6.0f} s  rss {rss_kib(self.args.pid) / 1024:7.1f} MiB  {total / self.args.interval:7.1f} req/s"
        running = running_executions(self.args.data_dir)
        if running is not None:
            line += f"  executions running {running}"
        print(line)
        for kind in kinds:
            values = window[kind]
            print(f"           {kind:<22} n={len(values):<6} p50 {percentile(values, 0.5):7.1f} ms"
                  f"  p99 {percentile(values, 0.99):7.1f} ms  max {max(values) * 1000:7.1f} ms")
        sys.stdout.flush()

    def verify(self):
        """Every accepted creation reads back with its body; every completed file is listed."""
        client = Client("127.0.0.1", self.args.port)
        lost = []
        for rne, body in self.accepted.items():
            status, answer, _ = client.request("GET", f"/v1/establishments/{rne}", self.args.cyber_key)
            if status != 200 or answer["rne"] != rne or answer["version"] != body["version"]:
                lost.append(f"establishment {rne}: {status} {answer}")
        for rne, ids in self.files.items():
            status, session, _ = client.request("POST", f"/v1/establishments/{rne}/upload-sessions",
                                                self.args.cyber_key, {})
            if status != 201:
                # Status 1 or 3 refuse a session: read the bases instead.
                status, answer, _ = client.request("GET", f"/v1/establishments/{rne}", self.args.cyber_key)
                known = {base["id"] for base in answer.get("bases", [])}
                listed = known
            else:
                token = session["url"].split("#token=")[1]
                status, listing, _ = client.request("GET", "/v1/upload/session", token)
                listed = {file["id"] for file in listing["files"]}
                status, answer, _ = client.request("GET", f"/v1/establishments/{rne}", self.args.cyber_key)
                listed |= {base["id"] for base in answer.get("bases", [])}
            # A file the school itself deleted later is not lost; the soak only deletes
            # complete files of earlier rounds, so the last one must be there.
            if ids and ids[-1] not in listed:
                lost.append(f"file {ids[-1]} of {rne}: not listed")
        return lost

    def run(self):
        threads = [threading.Thread(target=self.worker, daemon=True) for _ in range(self.args.workers)]
        threads.append(threading.Thread(target=self.agent, daemon=True))
        started = time.monotonic()
        print(f"soak: {self.args.workers} workers + 1 agent for {self.args.seconds} s, "
              f"report every {self.args.interval} s; server pid {self.args.pid}, "
              f"rss at start {rss_kib(self.args.pid) / 1024:.1f} MiB")
        for thread in threads:
            thread.start()
        next_report = started + self.args.interval
        while time.monotonic() < started + self.args.seconds:
            time.sleep(max(0, min(next_report, started + self.args.seconds) - time.monotonic()))
            if time.monotonic() >= next_report - 0.01:
                self.report(time.monotonic() - started, self.stats.take_window())
                next_report += self.args.interval
        self.stop.set()
        for thread in threads:
            thread.join(timeout=30)

        print("\ntotal:")
        for kind, values in sorted(self.stats.total.items()):
            print(f"  {kind:<22} n={len(values):<7} p50 {percentile(values, 0.5):7.1f} ms"
                  f"  p99 {percentile(values, 0.99):7.1f} ms  max {max(values) * 1000:7.1f} ms")
        print(f"  5xx and client errors: {self.stats.errors or 'none'}")
        print(f"  rss at end: {rss_kib(self.args.pid) / 1024:.1f} MiB")
        running = running_executions(self.args.data_dir)
        if running is not None:
            print(f"  executions running at end: {running}")
        lost = self.verify()
        print(f"read back: {len(self.accepted)} accepted establishments, "
              f"{sum(len(ids) for ids in self.files.values())} completed files; lost: {len(lost)}")
        for item in lost[:20]:
            print(f"  LOST {item}")
        return 1 if lost or self.stats.errors else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--cyber-key", required=True)
    parser.add_argument("--operator-key", required=True)
    parser.add_argument("--seconds", type=int, default=300)
    parser.add_argument("--interval", type=int, default=30)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--data-dir", help="the server's DATA_DIR, to count running executions")
    sys.exit(Soak(parser.parse_args()).run())


if __name__ == "__main__":
    main()
