"""Hostile uploads against a running service: time and memory each one costs, and health under load.

Starts ``braintumor serve`` on a free 127.0.0.1 port (or targets ``--url`` with ``--pid``), builds
small hostile files here (thin images, deflated DICOM bombs, a huge DICOM frame header, NIfTI
headers at the voxel limit, large valid images at and past the pixel limit), sends each alone and
prints its status, the seconds until the answer and how far the server's resident memory rose
above where it stood before (its peak, from /proc/PID/status VmHWM, reset before each probe).
Then a cross-site post and one for a foreign Host, and then health checks while heavy requests
fill the queue and 110 idle connections are held.

    python benchmarks/hostile.py                     # shipped model
    python benchmarks/hostile.py --model runs/x/best.safetensors
    python benchmarks/hostile.py --url http://127.0.0.1:5000/ --pid 12345

Exit status 0 when every probe was answered within --max-s seconds with a 4xx or an answer, the
memory rose at most --max-mb MB, both cross-site posts were refused and every health check took
under a second; 1 otherwise.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import socket
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/: _common and siblings
from load import SAMPLE, Client, start_server  # noqa: E402

MIB = 1 << 20


# ------------------------------------------------------------------------------ hostile files


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` grey pixels, with a little pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(64)))
            + chunk(b"IEND", b""))


def deflate_bomb(head: bytes, mib: int) -> bytes:
    """``head`` then ``mib`` MiB of zeros as one raw deflate stream (a full-flushed deflated MiB of
    zeros is the same bytes every time, so it is built in milliseconds)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(head) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(bytes(MIB)) + c.flush(zlib.Z_FULL_FLUSH)
    return first + block * mib + c.flush()


def dicom(rows: int, cols: int, transfer_syntax: str, pixel_data: bytes | None, encapsulated: bool = False,
          bits: int = 8) -> bytes:
    import pydicom
    from pydicom import uid
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate

    meta = FileMetaDataset()
    instance = uid.generate_uid()
    for key, value in dict(MediaStorageSOPClassUID=uid.MRImageStorage, MediaStorageSOPInstanceUID=instance,
                           TransferSyntaxUID=transfer_syntax).items():
        setattr(meta, key, value)
    ds = Dataset()
    ds.file_meta = meta
    for key, value in dict(SOPClassUID=uid.MRImageStorage, SOPInstanceUID=instance, Modality="MR", Rows=rows,
                           Columns=cols, SamplesPerPixel=1, PhotometricInterpretation="MONOCHROME2",
                           BitsAllocated=bits, BitsStored=bits, HighBit=bits - 1, PixelRepresentation=0).items():
        setattr(ds, key, value)
    if pixel_data is not None:
        ds.PixelData = encapsulate([pixel_data]) if encapsulated else pixel_data
        if encapsulated:
            ds["PixelData"].VR = "OB"
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def deflated_dicom_bomb(gib: int) -> bytes:
    """A deflated DICOM whose data set inflates to ``gib`` GiB."""
    from pydicom import uid

    from braintumor.medical.dicom import file_meta

    legit = dicom(8, 8, uid.DeflatedExplicitVRLittleEndian, bytes(64))
    _, start = file_meta(legit, 132)
    return legit[:start] + deflate_bomb(b"", gib << 10)


def nifti_header(shape: tuple[int, ...], dtype) -> bytes:
    import nibabel as nib

    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(dtype)
    hdr["vox_offset"], hdr["magic"] = 352, b"n+1"
    return hdr.binaryblock + b"\0" * 4


def nifti_gz_bomb(shape: tuple[int, ...], dtype) -> bytes:
    """A .nii.gz whose header declares ``shape`` and whose stream holds that many zero bytes."""
    itemsize = np.dtype(dtype).itemsize
    mib = -(-int(np.prod(shape)) * itemsize // MIB)
    return b"\x1f\x8b\x08\x00\0\0\0\0\x02\xff" + deflate_bomb(nifti_header(shape, dtype), mib)


def valid_nifti(shape: tuple[int, int, int]) -> bytes:
    import nibabel as nib

    vol = np.zeros(shape, np.int16)
    c = [s // 2 for s in shape]
    vol[c[0] - 40:c[0] + 40, c[1] - 50:c[1] + 50, :] = 800
    return gzip.compress(nib.Nifti1Image(vol, np.eye(4)).to_bytes(), 6)


def probes() -> list[tuple[str, str, bytes]]:
    """(what, file name, bytes) of every hostile upload."""
    from pydicom import uid

    rgba = Image.new("RGBA", (7000, 7000))
    big = Image.new("L", (4000, 4000))
    big.paste(255, (1000, 1000, 3000, 3000))
    rgba_ok = Image.new("RGBA", (4000, 4000), (0, 0, 0, 255))
    rgba_ok.paste((200, 200, 200, 255), (1000, 1000, 3000, 3000))
    rng = np.random.default_rng(0)
    return [
        ("thin PNG 1 x 80,000", "thin.png", png(Image.new("L", (1, 80_000)))),
        ("thin PNG 80,000 x 1", "wide.png", png(Image.new("L", (80_000, 1)))),
        ("thin PNG 2 x 2,000,000", "thin2.png", png(Image.new("L", (2, 2_000_000)))),
        ("RGBA PNG 7000 x 7000 (49 MP)", "rgba.png", png(rgba)),
        ("RGBA PNG 4000 x 4000 (16 MP)", "rgba16.png", png(rgba_ok)),
        ("grey PNG 4000 x 4000 (16 MP)", "grey16.png", png(big)),
        ("PNG header 60000 x 60000", "bomb.png", png_header(60000, 60000)),
        ("deflated DICOM, 1 GiB inflated", "bomb.dcm", deflated_dicom_bomb(1)),
        ("deflated DICOM, 8 GiB inflated", "bomb8.dcm", deflated_dicom_bomb(8)),
        ("DICOM RLE frame header 60000 x 60000", "rle.dcm",
         dicom(60000, 60000, uid.RLELossless, b"\0" * 64, encapsulated=True, bits=16)),
        ("DICOM 16-bit 2800 x 2800 native (valid)", "big.dcm",
         dicom(2800, 2800, uid.ExplicitVRLittleEndian, np.zeros((2800, 2800), np.uint16).tobytes(), bits=16)),
        ("NIfTI at the voxel limit (200 M voxels)", "limit.nii.gz", nifti_gz_bomb((1000, 1000, 200), np.uint8)),
        ("NIfTI 512 x 512 x 400 int16 (header)", "big.nii.gz",
         gzip.compress(nifti_header((512, 512, 400), np.int16) + b"\0" * 64)),
        ("NIfTI 256 x 256 x 160 int16 (valid)", "ok.nii.gz", valid_nifti((256, 256, 160))),
        ("16 MB of noise named .png", "noise.png", rng.integers(0, 256, 16 * MIB - 4096, np.uint8).tobytes()),
    ]


# ----------------------------------------------------------------------------------- memory


class Memory:
    """Resident memory of the server process, from /proc (Linux)."""

    def __init__(self, pid: int | None):
        self.pid = pid

    def _status(self, key: str) -> float:
        if self.pid is None:
            return float("nan")
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0  # kB -> MB
        return float("nan")

    def rss(self) -> float:
        return self._status("VmRSS")

    def reset_peak(self) -> bool:
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # resets VmHWM to VmRSS
            return True
        except OSError:
            return False

    def peak(self) -> float:
        return self._status("VmHWM")


# ------------------------------------------------------------------------------------- checks


def send(client: Client, name: str, data: bytes, headers: dict | None = None) -> tuple[int, dict, float]:
    return client.predict(name, data, {"explain": "true"}, headers)


def health_under_load(client: Client, url: str, heavy: bytes, clients: int, idle: int) -> tuple[list, dict]:
    """Health latencies while ``clients`` heavy requests are sent over and over and ``idle``
    connections are held open without a byte; and the statuses the heavy requests got."""
    from urllib.parse import urlsplit

    u = urlsplit(url)
    stop = threading.Event()
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def hammer() -> None:
        while not stop.is_set():
            try:
                status, _, _ = send(client, "grey16.png", heavy)
            except OSError:
                status = 0
            with lock:
                statuses[status] = statuses.get(status, 0) + 1

    sockets = [socket.create_connection((u.hostname, u.port), timeout=10) for _ in range(idle)]
    latencies = []
    with ThreadPoolExecutor(clients) as pool:
        for _ in range(clients):
            pool.submit(hammer)
        time.sleep(3.0)  # let the queue fill
        for _ in range(10):
            t0 = time.perf_counter()
            try:
                status, _ = Client(url, timeout=10).request("GET", "/api/health")
            except OSError:
                status = 0
            latencies.append((status, time.perf_counter() - t0))
            time.sleep(0.5)
        stop.set()
    for s in sockets:
        s.close()
    return latencies, statuses


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=None, help="a running server (default: start one here)")
    ap.add_argument("--pid", type=int, default=None, help="with --url: the server's process id, for its memory")
    ap.add_argument("--model", action="append", default=[], metavar="FILE",
                    help="checkpoint for the server started here (default: the shipped model)")
    ap.add_argument("--max-s", type=float, default=2.0, help="seconds a probe may take (default: 2)")
    ap.add_argument("--max-mb", type=float, default=500.0, help="MB the memory may rise (default: 500)")
    ap.add_argument("--clients", type=int, default=24, help="heavy clients during the health check")
    ap.add_argument("--idle", type=int, default=110, help="idle connections during the health check")
    args = ap.parse_args(argv)

    files = probes()
    proc = None
    url, pid = args.url, args.pid
    if url is None:
        proc, url = start_server(args.model, None, startup_timeout=180)
        pid = proc.pid
    mem = Memory(pid)
    ok = True
    try:
        client = Client(url, timeout=120)
        status, raw = client.request("GET", "/api/health")
        info = json.loads(raw) if status == 200 else {}
        model = info.get("model", {})
        print(f"server {url}  model {model.get('name')} {model.get('version')}  work {info.get('work')}")
        sample = next(p for p in sorted(SAMPLE.rglob("*.jpg")))
        send(client, sample.name, sample.read_bytes())  # warm
        print(f"{'probe':<42} {'bytes':>10} {'status':>6} {'s':>6} {'RSS MB':>7} {'rise MB':>8}  answer")
        for what, name, data in files:
            before = mem.rss()
            mem.reset_peak()
            status, answer, elapsed = send(client, name, data)
            rise = mem.peak() - before
            shown = answer.get("error") or f"{answer.get('label')} ({answer.get('decision', 'classified')})"
            good = (status == 200 or 400 <= status < 500) and elapsed <= args.max_s and not rise > args.max_mb
            ok &= good
            print(f"{what:<42} {len(data):>10,} {status:>6} {elapsed:>6.2f} {before:>7.0f} {rise:>8.0f}  "
                  f"{'' if good else 'FAIL '}{shown[:90]}")

        print()
        for label, headers in (("cross-site post (Origin: https://evil.example)", {"Origin": "https://evil.example"}),
                               ("foreign Host (DNS rebinding: Host evil.example)",
                                {"Host": "evil.example", "Origin": "http://evil.example"})):
            status, answer, _ = send(client, sample.name, sample.read_bytes(), headers)
            ok &= status == 403
            print(f"{label:<52} {status}  {answer.get('error', '')[:80]}")

        print()
        for what, name in (("RGBA PNG 4000 x 4000 (16 MP)", "rgba16.png"), ("thin PNG 1 x 80,000", "thin.png")):
            data = next(d for w, n, d in files if n == name)
            before = mem.rss()
            mem.reset_peak()
            with ThreadPoolExecutor(8) as pool:
                got = list(pool.map(lambda _: send(client, name, data), range(8)))
            rise = mem.peak() - before
            worst = max(t for _, _, t in got)
            print(f"8 at once: {what:<32} statuses {sorted({st for st, _, _ in got})}  slowest {worst:.2f} s  "
                  f"memory rise {rise:.0f} MB")

        print()
        heavy = next(d for w, n, d in files if n == "grey16.png")
        latencies, statuses = health_under_load(client, url, heavy, args.clients, args.idle)
        worst = max(t for _, t in latencies)
        ok &= all(s == 200 and t < 1.0 for s, t in latencies)
        print(f"health with {args.clients} heavy clients (16 MP scans) and {args.idle} idle connections: "
              f"{len(latencies)} checks, statuses {sorted({s for s, _ in latencies})}, "
              f"median {1000 * sorted(t for _, t in latencies)[len(latencies) // 2]:.0f} ms, "
              f"worst {1000 * worst:.0f} ms")
        print(f"heavy requests meanwhile: " + ", ".join(f"{n} x {s}" for s, n in sorted(statuses.items())))
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except Exception:  # noqa: BLE001
                proc.kill()
    print("all within the limits" if ok else "SOME PROBES FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
