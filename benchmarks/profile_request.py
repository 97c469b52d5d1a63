"""Where the time of one answer goes: a web request end to end, and one ``predict_batch``.

    python benchmarks/profile_request.py [--model FILE] [--n 60] [--data DIR] [--side 512]

Each step of the served code is timed where it runs (the functions are wrapped with a timer, so the
figures are those of the real code path): reading the upload, decoding the image, preprocessing,
the network (ONNX Runtime), the classifier and the decision, the heat map, the tumour box, the
similar cases, encoding the images, and the JSON. ``POST /api/predict`` runs through Flask's test
client (no socket), as the page asks: the answer with the heat map. Medians per request (or per
batch of 32), over ``--n`` distinct images (the 12 sample scans flipped, rotated, cropped and
re-contrasted, resized to ``--side`` pixels: the dataset's scans are mostly 512 x 512).
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/: _common and siblings
from inference import make_inputs  # noqa: E402


class Timers:
    """Wall time of wrapped functions, per step, for the current request."""

    def __init__(self):
        self.now: dict[str, float] = defaultdict(float)
        self.runs: list[dict[str, float]] = []
        self._depth: dict[str, int] = defaultdict(int)

    def wrap(self, owner, name: str, step: str) -> None:
        fn = getattr(owner, name)
        timers = self

        def timed(*args, **kwargs):
            timers._depth[step] += 1
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                timers._depth[step] -= 1
                if not timers._depth[step]:  # the outermost call of a step only
                    timers.now[step] += time.perf_counter() - t

        setattr(owner, name, timed)

    def start(self) -> None:
        self.now = defaultdict(float)

    def stop(self, total: float) -> None:
        self.now["total"] = total
        self.runs.append(dict(self.now))

    def medians(self) -> dict[str, float]:
        steps = {k for r in self.runs for k in r}
        return {k: 1000 * statistics.median(r.get(k, 0.0) for r in self.runs) for k in steps}


def instrument(timers: Timers) -> None:
    """Wrap the steps of the served code (where each is looked up when it runs)."""
    from braintumor.inference import backends, cam, decision, predictor
    from braintumor.inference.preprocess import Preprocessing
    from braintumor.web import routes

    timers.wrap(routes, "read_upload", "read upload (multipart, decode)")
    timers.wrap(routes, "load_image", "decode")
    timers.wrap(predictor, "load_image", "decode")
    timers.wrap(Preprocessing, "pixels", "preprocess")
    timers.wrap(Preprocessing, "normalize", "preprocess")
    timers.wrap(backends.OnnxNetwork, "__call__", "network (ONNX Runtime)")
    timers.wrap(predictor._Member, "logits", "classifier")
    timers.wrap(decision, "softmax", "classifier")
    timers.wrap(decision.Decider, "__call__", "decision (conformal set, OOD gate)")
    timers.wrap(predictor, "decode_boxes", "box")
    timers.wrap(predictor.Predictor, "_tumour_boxes", "box")
    timers.wrap(cam, "cam_maps", "heat map")
    timers.wrap(cam, "heatmap_on_image", "heat map")
    timers.wrap(cam, "render_overlay", "overlay (colour)")
    timers.wrap(predictor.Predictor, "_add_similar", "similar cases")
    timers.wrap(routes, "png_data_url", "image encoding (PNG, base64)")
    timers.wrap(routes, "display_original", "image encoding (PNG, base64)")


def web_request(app, inputs: list[bytes], fields: dict, timers: Timers) -> dict[str, float]:
    client = app.test_client()

    def post(data: bytes):
        return client.post("/api/predict", data={"file": (io.BytesIO(data), "scan.jpg"), **fields},
                           content_type="multipart/form-data")

    for data in inputs[:3]:
        post(data)
    timers.runs.clear()
    for data in inputs:
        timers.start()
        t = time.perf_counter()
        r = post(data)
        body = r.get_data()
        timers.stop(time.perf_counter() - t)
        assert r.status_code == 200, body[:200]
    out = timers.medians()
    out["answer size (kB)"] = len(body) / 1000  # the last one
    return out


def batch(p, inputs: list[bytes], timers: Timers, size: int = 32) -> dict[str, float]:
    p.predict_batch(inputs[:size], batch_size=size)
    timers.runs.clear()
    for k in range(0, len(inputs) - size + 1, size):
        for _ in range(3):
            timers.start()
            t = time.perf_counter()
            p.predict_batch(inputs[k:k + size], batch_size=size)
            timers.stop(time.perf_counter() - t)
    return timers.medians()


def show(title: str, figures: dict[str, float], per: str) -> None:
    total = figures.get("total", 0.0)
    print(f"\n{title} (medians, ms {per})")
    for step, ms in sorted(figures.items(), key=lambda kv: -kv[1]):
        if step in ("total", "answer size (kB)"):
            continue
        print(f"  {step:40}{ms:8.2f}")
    named = sum(v for k, v in figures.items() if k not in ("total", "answer size (kB)", "read upload (multipart, decode)"))
    print(f"  {'total':40}{total:8.2f}   (the steps above overlap where one calls another; "
          f"not in a named step: {max(0.0, total - named):.2f})")
    if "answer size (kB)" in figures:
        print(f"  answer size: {figures['answer size (kB)']:.0f} kB")


def resize_all(inputs: list[bytes], side: int) -> list[bytes]:
    from PIL import Image

    out = []
    for data in inputs:
        img = Image.open(io.BytesIO(data)).convert("L").resize((side, side), Image.BILINEAR)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=92)
        out.append(buf.getvalue())
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    ap.add_argument("--n", type=int, default=60, help="distinct images")
    ap.add_argument("--data", default=None, help="a folder of images instead of the sample scans")
    ap.add_argument("--side", type=int, default=512, help="resize the images to this side (0: as they are)")
    ap.add_argument("--overlay", action="store_true",
                    help="ask for the server-drawn overlay PNG too (older clients; the page colours the map)")
    args = ap.parse_args(argv)

    from braintumor import Predictor
    from braintumor.web import create_app

    inputs = make_inputs(args.n, args.data)
    if args.side:
        inputs = resize_all(inputs, args.side)
    timers = Timers()
    instrument(timers)
    p = Predictor.load(args.model)
    app = create_app(predictor=p)
    fields = {"explain": "true", "overlay": "true" if args.overlay else "false"}
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; load average "
          f"{os.getloadavg()[0]:.2f}; model {p.name} ({p.backend}); {len(inputs)} images of "
          f"{args.side or 'their own'} px; 'torch' imported: {'torch' in sys.modules}")
    show(f"POST /api/predict, explain=true, overlay={fields['overlay']}", web_request(app, inputs, fields, timers),
         "per request")
    show("predict_batch, 32 images", batch(p, inputs, timers), "per batch of 32")
    return 0


if __name__ == "__main__":
    sys.exit(main())
