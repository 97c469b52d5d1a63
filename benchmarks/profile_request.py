"""Where the time of one answer goes: a web request end to end, and one ``predict_batch``.

    python benchmarks/profile_request.py [--model FILE] [--n 60] [--data DIR] [--side 512] [--clock cpu]

Each step of the served code is timed where it runs (the functions are wrapped with a timer, so the
figures are those of the real code path): reading the upload, decoding the image, preprocessing,
the network (ONNX Runtime), the classifier and the decision, the heat map, the tumour box, the
similar cases, encoding the images, and the JSON. ``POST /api/predict`` runs through Flask's test
client (no socket), as the page asks: the answer with the heat map. Medians per request (or per
batch of 32), over ``--n`` distinct images (the 12 sample scans flipped, rotated, cropped and
re-contrasted, resized to ``--side`` pixels: the dataset's scans are mostly 512 x 512).

``--clock cpu`` times each step in CPU time of the whole process (all its threads, ONNX Runtime's
included) instead of wall time: on a machine that other work keeps busy, wall times grow with the
wait for a core, CPU times much less, so compare CPU times (or the steps' shares) there.
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


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


class Timers:
    """Time of wrapped functions, per step, for the current request: wall time, or with
    ``clock="cpu"`` the process's CPU time."""

    def __init__(self, clock: str = "wall"):
        self.clock = CLOCKS[clock]
        self.now: dict[str, float] = defaultdict(float)
        self.runs: list[dict[str, float]] = []
        self._depth: dict[str, int] = defaultdict(int)

    def wrap(self, owner, name: str, step: str) -> None:
        fn = getattr(owner, name)
        timers = self
        clock = self.clock

        def timed(*args, **kwargs):
            timers._depth[step] += 1
            t = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                timers._depth[step] -= 1
                if not timers._depth[step]:  # the outermost call of a step only
                    timers.now[step] += clock() - t

        setattr(owner, name, timed)

    def start(self) -> None:
        self.now = defaultdict(float)

    def stop(self, total: float) -> None:
        self.now["total"] = total
        self.runs.append(dict(self.now))

    def medians(self) -> dict[str, float]:
        steps = {k for r in self.runs for k in r}
        return {k: 1000 * statistics.median(r.get(k, 0.0) for r in self.runs) for k in steps}


SERVER = "the server's work on its worker"  # everything the test client does not do itself
MEAN = "(its mean over the requests)"
PREDICTOR = "the Predictor's answer (explain)"
ANSWER = "the JSON answer's fields and pictures"
# What the worker's work is made of, one after the other: the rest of it is Flask, the form's
# fields, the answer's id and timings, and the log.
PARTS = ("read upload (multipart, decode)", PREDICTOR, ANSWER, "feedback record", "JSON")


def instrument(timers: Timers) -> None:
    """Wrap the steps of the served code (where each is looked up when it runs)."""
    from braintumor.inference import backends, cam, decision, ood, predictor
    from braintumor.inference.preprocess import Preprocessing
    from braintumor.web import routes, work

    timers.wrap(work.WorkGate, "_timed", SERVER)
    timers.wrap(routes, "read_upload", "read upload (multipart, decode)")
    timers.wrap(routes, "load_image", "decode")
    timers.wrap(predictor, "load_image", "decode")
    timers.wrap(Preprocessing, "pixels", "preprocess")
    timers.wrap(Preprocessing, "normalize", "preprocess")
    timers.wrap(backends.OnnxNetwork, "__call__", "network (ONNX Runtime)")
    timers.wrap(backends.OnnxRefiner, "__call__", "box refiner (ONNX Runtime)")
    timers.wrap(predictor._Member, "logits", "classifier")
    timers.wrap(decision, "softmax", "classifier")
    timers.wrap(decision.Decider, "__call__", "decision (conformal set, OOD gate)")
    timers.wrap(ood, "gate_inputs", "gate statistics (the whole image)")
    timers.wrap(ood, "image_statistics", "gate statistics (network pixels)")
    timers.wrap(predictor, "has_burned_in_text", "burned-in text check")
    timers.wrap(predictor, "decode_boxes", "box")
    timers.wrap(predictor.Predictor, "_tumour_boxes", "box")
    timers.wrap(cam, "cam_maps", "heat map")
    timers.wrap(cam, "heatmap_on_image", "heat map")
    timers.wrap(cam, "render_overlay", "overlay (colour)")
    timers.wrap(predictor.Predictor, "_add_similar", "similar cases")
    timers.wrap(routes, "png_data_url", "image encoding (PNG, base64)")
    timers.wrap(routes, "display_original", "image encoding (PNG, base64)")
    timers.wrap(routes, "answer_upload", PREDICTOR)
    timers.wrap(routes, "build_answer", ANSWER)
    timers.wrap(routes, "remember", "feedback record")
    timers.wrap(routes, "jsonify", "JSON")


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
        t = timers.clock()
        r = post(data)
        body = r.get_data()
        timers.stop(timers.clock() - t)
        assert r.status_code == 200, body[:200]
    out = timers.medians()
    # The mean too: the few answers computed again in float32 (near a decision boundary) cost
    # more than the median shows, and throughput pays for them.
    out[MEAN] = 1000 * statistics.mean(r.get(SERVER, 0.0) for r in timers.runs)
    out["answer size (kB)"] = len(body) / 1000  # the last one
    return out


def batch(p, inputs: list[bytes], timers: Timers, size: int = 32) -> dict[str, float]:
    p.predict_batch(inputs[:size], batch_size=size)
    timers.runs.clear()
    for k in range(0, len(inputs) - size + 1, size):
        for _ in range(3):
            timers.start()
            t = timers.clock()
            p.predict_batch(inputs[k:k + size], batch_size=size)
            timers.stop(timers.clock() - t)
    return {k: v for k, v in timers.medians().items() if k not in (SERVER, PREDICTOR, ANSWER)}


def show(title: str, figures: dict[str, float], per: str) -> None:
    total = figures.get("total", 0.0)
    print(f"\n{title} (medians, ms {per})")
    for step, ms in sorted(figures.items(), key=lambda kv: -kv[1]):
        if step in ("total", "answer size (kB)", MEAN):
            continue
        print(f"  {step:40}{ms:8.2f}")
        if step == SERVER and MEAN in figures:
            print(f"  {'  ' + MEAN:40}{figures[MEAN]:8.2f}")
    if SERVER in figures:
        rest = figures[SERVER] - sum(figures.get(k, 0.0) for k in PARTS)
        print(f"  {'  of which the rest (Flask, fields, log)':40}{rest:8.2f}")
    print(f"  {'total':40}{total:8.2f}   (the steps above overlap where one calls another; "
          f"{SERVER!r} holds the rest, and the total the test client's own work too)")
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
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                    help="time the steps in wall time or in the process's CPU time (default: wall)")
    ap.add_argument("--overlay", action="store_true",
                    help="ask for the server-drawn overlay PNG too (older clients; the page colours the map)")
    args = ap.parse_args(argv)

    from braintumor import Predictor
    from braintumor.web import create_app

    inputs = make_inputs(args.n, args.data)
    if args.side:
        inputs = resize_all(inputs, args.side)
    timers = Timers(args.clock)
    instrument(timers)
    p = Predictor.load(args.model)
    app = create_app(predictor=p)
    fields = {"explain": "true", "overlay": "true" if args.overlay else "false"}
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; load average "
          f"{os.getloadavg()[0]:.2f}; model {p.name} ({p.backend}); {len(inputs)} images of "
          f"{args.side or 'their own'} px; 'torch' imported: {'torch' in sys.modules}; {args.clock} time")
    show(f"POST /api/predict, explain=true, overlay={fields['overlay']}", web_request(app, inputs, fields, timers),
         "per request")
    show("predict_batch, 32 images", batch(p, inputs, timers), "per batch of 32")
    return 0


if __name__ == "__main__":
    sys.exit(main())
