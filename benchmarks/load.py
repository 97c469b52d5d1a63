"""Load test of the web API: many concurrent clients, different images, answers checked.

Starts ``braintumor serve`` on a free 127.0.0.1 port (or targets ``--url``), sends each image once
alone to record its answer, then sends ``--requests`` requests from ``--clients`` concurrent clients
over the images and prints requests per second, p50/p95/p99 latency, the number of errors (must be
0) and of answers that differ from the answer for the same image sent alone (must be 0).

    python benchmarks/load.py                       # shipped model, 400 requests, 8 clients
    python benchmarks/load.py --model runs/x/best.safetensors --requests 100
    python benchmarks/load.py --url http://127.0.0.1:5000/

Exit status: 0 when every request succeeded with the expected answer, 1 otherwise.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/: _common and siblings
from _common import REPO  # noqa: E402
SAMPLE = REPO / "tests" / "data" / "sample"
SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def multipart(fields: dict[str, str], filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for k, v in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    mime = "image/png" if filename.lower().endswith(".png") else "image/jpeg"
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                 f"Content-Type: {mime}\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class Client:
    def __init__(self, url: str, timeout: float):
        u = urlsplit(url)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.base = u.path.rstrip("/")
        self.timeout = timeout

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request(method, self.base + path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def predict(self, filename: str, data: bytes, fields: dict[str, str],
                headers: dict | None = None) -> tuple[int, dict, float]:
        body, ctype = multipart(fields, filename, data)
        t0 = time.perf_counter()
        status, raw = self.request("POST", "/api/predict", body, {"Content-Type": ctype, **(headers or {})})
        elapsed = time.perf_counter() - t0
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = {"error": f"not JSON: {raw[:80]!r}"}
        return status, answer, elapsed


PER_REQUEST = ("timing_ms", "id")  # what differs between two requests for the same image by design


def comparable(answer: dict) -> dict:
    """Everything in an answer except what belongs to the request itself: its timings and the id
    that feedback on this one answer refers to."""
    return {k: v for k, v in answer.items() if k not in PER_REQUEST}


def server_cpu_seconds(proc) -> float:
    """CPU seconds the server process has used (user + system, all threads; Linux /proc)."""
    try:
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    pos = (len(s) - 1) * q / 100.0
    lo, hi = int(pos), min(int(pos) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def start_server(models: list[str], workers: int | None, startup_timeout: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "braintumor", "serve", "--host", "127.0.0.1", "--port", str(port)]
    if workers:
        cmd += ["--workers", str(workers)]
    for m in models:
        cmd += ["--model", m]
    env = {**os.environ, "BRAINTUMOR_NO_PROGRESS": "1"}
    # stderr into a file: a pipe nobody reads fills up with the server's log and stops the server
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log, text=True)
    url = f"http://127.0.0.1:{port}/"
    client = Client(url, timeout=5)
    deadline = time.monotonic() + startup_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise SystemExit(f"load.py: the server exited at start-up: {log.read().strip()[-2000:]}")
        try:
            if client.request("GET", "/api/health")[0] == 200:
                return proc, url
        except OSError:
            pass
        time.sleep(0.25)
    proc.terminate()
    raise SystemExit(f"load.py: the server did not answer within {startup_timeout:.0f} s")


def find_images(folder: Path, limit: int) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES)
    if not files:
        raise SystemExit(f"load.py: no images under {folder}")
    step = max(1, len(files) // limit)
    return files[::step][:limit]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=None, help="a running server (default: start one here)")
    ap.add_argument("--model", action="append", default=[], metavar="FILE",
                    help="checkpoint for the server started here (default: the shipped model)")
    ap.add_argument("--workers", type=int, default=None,
                    help="scans the server started here analyses at once (default: its cores)")
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--images", type=Path, default=SAMPLE, help="folder of images (default: the 12 samples)")
    ap.add_argument("--max-images", type=int, default=48)
    ap.add_argument("--no-explain", action="store_true", help="ask for the answer without the heat map")
    ap.add_argument("--overlay", action="store_true",
                    help="also ask for the server-drawn overlay PNG (what older API clients get; the page "
                         "asks for the heat map's grey levels and colours them itself)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds allowed for one request")
    ap.add_argument("--deadline", type=float, default=900.0,
                    help="seconds allowed for the whole run; later requests are not sent")
    args = ap.parse_args(argv)
    if not 1 <= args.requests <= 10_000 or not 1 <= args.clients <= 64:
        ap.error("--requests must be 1..10000 and --clients 1..64")

    images = [(p.name, p.read_bytes()) for p in find_images(args.images, args.max_images)]
    fields = {"explain": "false" if args.no_explain else "true", "overlay": "true" if args.overlay else "false"}
    proc = None
    url = args.url
    if url is None:
        proc, url = start_server(args.model, args.workers, startup_timeout=180)
    try:
        client = Client(url, args.timeout)
        status, raw = client.request("GET", "/api/health")
        model = json.loads(raw).get("model", {}) if status == 200 else {}
        print(f"server {url}  model {model.get('name')} {model.get('version')} "
              f"sha256 {str(model.get('sha256'))[:12]}", flush=True)

        # 1. Each image alone: the answer every later request must reproduce.
        reference: dict[int, dict] = {}
        for i, (name, data) in enumerate(images):
            status, answer, _ = client.predict(name, data, fields)
            if status != 200:
                print(f"reference request for {name} failed: {status} {answer.get('error')}")
                return 1
            reference[i] = comparable(answer)

        # 2. The load: request k sends image k mod n, from --clients threads at once.
        latencies: list[float] = []
        errors: list[str] = []
        mismatches = 0
        sent = 0
        t_end = time.monotonic() + args.deadline

        def one(k: int) -> tuple[int, int, dict, float]:
            i = k % len(images)
            if time.monotonic() > t_end:
                return i, -1, {}, 0.0
            try:
                status, answer, elapsed = client.predict(*images[i], fields)
            except OSError as exc:
                return i, 0, {"error": f"{type(exc).__name__}: {exc}"}, 0.0
            return i, status, answer, elapsed

        cpu0 = server_cpu_seconds(proc) if proc is not None else 0.0
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.clients) as pool:
            futures = [pool.submit(one, k) for k in range(args.requests)]
            for fut in as_completed(futures):
                i, status, answer, elapsed = fut.result()
                if status == -1:
                    continue  # past the deadline: not sent
                sent += 1
                if status != 200:
                    errors.append(f"{status} {answer.get('error')}")
                    continue
                latencies.append(elapsed)
                if comparable(answer) != reference[i]:
                    mismatches += 1
        wall = time.perf_counter() - t0
        cpu = server_cpu_seconds(proc) - cpu0 if proc is not None else None
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()

    ok = len(latencies)
    print(f"requests {sent} (of {args.requests}) from {args.clients} clients over {len(images)} images, "
          f"explain={'off' if args.no_explain else 'on'}, overlay={'on' if args.overlay else 'off'}; load average "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"wall {wall:.1f} s  throughput {ok / wall:.2f} req/s")
    if cpu is not None and ok:
        per = 1000 * cpu / ok
        print(f"server CPU time {per:.1f} ms a request (all its threads): on {os.cpu_count()} cores to itself "
              f"it could answer at most {1000 * (os.cpu_count() or 1) / per:.0f} req/s")
    print(f"latency ms  p50 {1000 * percentile(latencies, 50):.0f}  p95 {1000 * percentile(latencies, 95):.0f}  "
          f"p99 {1000 * percentile(latencies, 99):.0f}  max {1000 * max(latencies, default=float('nan')):.0f}")
    print(f"errors {len(errors)}  answers different from the image sent alone {mismatches}")
    for e in sorted(set(errors))[:5]:
        print(f"  error: {e}")
    if sent < args.requests:
        print(f"stopped at the {args.deadline:.0f} s deadline: {args.requests - sent} requests not sent")
    return 0 if not errors and not mismatches and sent == args.requests else 1


if __name__ == "__main__":
    sys.exit(main())
