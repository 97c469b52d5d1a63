"""Inference speed of the Predictor against a plain reference, on the same images and machine.

    python benchmarks/inference.py [--model FILE] [--n 60] [--data DIR] [--backend auto]

Measured, as medians over at least 50 distinct images (the 12 sample scans, flipped, rotated, cropped
and re-contrasted, or the images in --data):

- batch-1 ``predict``;
- ``explain`` (predict + heat map + overlay);
- images per second of ``predict_batch`` (batch 32);
- for a model with a tumour-box head, what the box head and the box refiner cost an image;

and the same for the reference: a torchvision ResNet18 in eager float32 at 224 px (the checkpoint's
weights when it is a ResNet18, otherwise random ones; speed does not depend on them), with a new
pytorch-grad-cam ``GradCAM`` object per image. Every input is JPEG bytes, decoded in the timed call.

It also checks accuracy: the largest probability difference between the Predictor (its backend) and
the same checkpoint in eager PyTorch, label agreement, and the correlation of each heat map with
pytorch-grad-cam on the whole eager model (target layer ``layer4[-1]``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/: _common and siblings
from _common import REPO  # noqa: E402
SAMPLE = REPO / "tests" / "data" / "sample"


def make_inputs(n: int, data: str | None) -> list[bytes]:
    """n distinct JPEG images: files from ``data`` or augmented sample scans."""
    from braintumor.formats import IMAGE_SUFFIXES
    from braintumor.imaging import load_image

    root = Path(data) if data else SAMPLE
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        sys.exit(f"no images in {root}")
    out = []
    for i in range(n):
        img = load_image(files[i % len(files)])
        k = i // len(files)
        if not data or k:  # variations: mirror, rotation, crop, contrast
            if k % 2:
                img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            img = img.rotate((k * 7) % 21 - 10, resample=Image.BILINEAR)
            m = (k % 3) * 6
            img = img.crop((m, m, img.width - m, img.height - m))
            img = ImageEnhance.Contrast(img).enhance(1 + 0.1 * ((k % 5) - 2))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=92)
        out.append(buf.getvalue())
    return out


def per_image_ms(fn, inputs, warmup: int = 3) -> tuple[float, float]:
    """Median wall-clock and process CPU milliseconds per call, one input at a time."""
    for x in inputs[:warmup]:
        fn(x)
    wall, cpu = [], []
    for x in inputs:
        t, c = time.perf_counter(), time.process_time()
        fn(x)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return 1000 * statistics.median(wall), 1000 * statistics.median(cpu)


def throughput(fn, inputs, repeats: int = 3) -> float:
    """Median images per second over ``repeats`` passes over all inputs."""
    fn(inputs[:8])
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(inputs)
        rates.append(len(inputs) / (time.perf_counter() - t))
    return statistics.median(rates)


class Reference:
    """The plain way: eager float32 ResNet18 at 224 px, a new GradCAM object per image."""

    def __init__(self, ck):
        import torch

        from braintumor.training.models import build_model
        from braintumor.training.transforms import Preprocessing

        self.torch = torch
        self.model = build_model("resnet18", len(ck.classes)).eval()
        if ck.arch == "resnet18":
            own = self.model.state_dict()  # the classifier only: a box head or refiner is not timed here
            self.model.load_state_dict({k: v.float() for k, v in ck.state_dict.items() if k in own})
        self.prep = Preprocessing(img_size=224, mean=ck.preprocessing.mean, std=ck.preprocessing.std)

    def _x(self, data: bytes):
        from braintumor.imaging import load_image

        return self.torch.from_numpy(self.prep.array([load_image(data)]))

    def predict(self, data: bytes):
        with self.torch.inference_mode():
            return self.model(self._x(data)).softmax(1)

    def explain(self, data: bytes):
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.image import show_cam_on_image
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        x = self._x(data)
        with self.torch.inference_mode():
            probs = self.model(x).softmax(1)
        with GradCAM(model=self.model, target_layers=[self.model.layer4[-1]]) as cam:
            heat = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(probs.argmax()))])[0]
        gray = (x[0, 0] * self.prep.std[0] + self.prep.mean[0]).clamp(0, 1).numpy()
        show_cam_on_image(np.repeat(gray[..., None], 3, 2), heat, use_rgb=True)
        return probs, heat

    def predict_batch(self, inputs: list[bytes], batch_size: int = 32):
        from braintumor.imaging import load_image

        out = []
        for i in range(0, len(inputs), batch_size):
            x = self.torch.from_numpy(self.prep.array([load_image(d) for d in inputs[i:i + batch_size]]))
            with self.torch.inference_mode():
                out.append(self.model(x).softmax(1))
        return out


def eager_reference_checks(predictor, inputs: list[bytes]) -> dict:
    """The Predictor against its own checkpoint in eager PyTorch: probabilities and heat maps."""
    import torch
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from braintumor.training.checkpoint import load_checkpoint
    from braintumor.training.network_parts import full_model_target_layer
    from braintumor.imaging import load_image

    diffs, agree, corrs = [], 0, []
    for ck in predictor.checkpoints[:1]:
        ck = load_checkpoint(ck.path)
        model = ck.build()
        for data in inputs:
            x = torch.from_numpy(ck.preprocessing.array([load_image(data)]))
            with torch.inference_mode():
                logits = model(x).double() / ck.temperature
            want = logits.softmax(1)[0].numpy()
            e = predictor.explain(data) if len(predictor.checkpoints) == 1 else None
            got = np.array(list((e or predictor.predict(data))["probabilities"].values()))
            diffs.append(float(np.abs(got - want).max()))
            agree += int(got.argmax() == want.argmax())
            if e is not None:
                with GradCAM(model=model, target_layers=[full_model_target_layer(model, ck.arch)]) as cam:
                    ref = cam(input_tensor=x, targets=[ClassifierOutputTarget(predictor.classes.index(e["target"]))])[0]
                if ref.std() > 0 and e["heatmap_input"].std() > 0:
                    corrs.append(float(np.corrcoef(ref.ravel(), e["heatmap_input"].ravel())[0, 1]))
    return {
        "max_abs_prob_diff": max(diffs),
        "label_agreement": agree / len(inputs),
        "cam_corr_min": min(corrs) if corrs else None,
        "cam_corr_median": statistics.median(corrs) if corrs else None,
    }


def split_accuracy(predictor, split_file: str, data: str | None, calibration: list) -> dict:
    """On a run's validation images (calibration images left out): accuracy of the Predictor with
    and without test-time augmentation, and of its first checkpoint in eager PyTorch; how often the
    Predictor and eager PyTorch agree, and their largest probability difference."""
    import torch

    from braintumor.training.checkpoint import load_checkpoint
    from braintumor.imaging import load_image

    if not data:
        sys.exit("--split needs --split-data (the Training folder)")
    split = json.loads(Path(split_file).read_text())
    calib = {Path(c).name for c in calibration}
    items = [(Path(data) / rel, rel.split("/")[0]) for rel in split["val"] if Path(rel).name not in calib]
    ck = load_checkpoint(predictor.checkpoints[0].path)
    model = ck.build()
    labels = np.array([predictor.classes.index(c) for _, c in items])
    ours, ours_tta, eager, diffs = [], [], [], []

    def probs(r):
        return np.array([r["probabilities"][c] for c in predictor.classes])

    for i in range(0, len(items), 64):
        chunk = [path for path, _ in items[i:i + 64]]
        plain = [probs(r) for r in predictor.predict_batch(chunk, batch_size=64)]
        ours_tta += [int(probs(r).argmax()) for r in predictor.predict_batch(chunk, batch_size=16, tta=True)]
        with torch.inference_mode():
            x = torch.from_numpy(ck.preprocessing.array([load_image(path) for path in chunk]))
            pe = (model(x).double() / ck.temperature).softmax(1).numpy()
        ours += [int(p.argmax()) for p in plain]
        eager += [int(q.argmax()) for q in pe]
        diffs += [float(np.abs(p - q).max()) for p, q in zip(plain, pe)]
    ours, ours_tta, eager = np.array(ours), np.array(ours_tta), np.array(eager)
    out = {
        "n": len(items),
        "accuracy": float((ours == labels).mean()),
        "accuracy_tta": float((ours_tta == labels).mean()),
        "accuracy_eager_first_checkpoint": float((eager == labels).mean()),
        "label_agreement_with_eager": float((ours == eager).mean()),
        "max_abs_prob_diff": max(diffs),
        "median_abs_prob_diff": statistics.median(diffs),
    }
    print(f"\nvalidation split ({out['n']} images, calibration images left out):\n"
          f"  accuracy {out['accuracy']:.4f} ({predictor.name}, {predictor.backend}), "
          f"with TTA {out['accuracy_tta']:.4f}; eager PyTorch of {ck.name}: "
          f"{out['accuracy_eager_first_checkpoint']:.4f}\n"
          f"  labels agree with eager on {out['label_agreement_with_eager']:.2%}, max |prob diff| "
          f"{out['max_abs_prob_diff']:.3f} (median {out['median_abs_prob_diff']:.1e})")
    return out


def measure(obj, inputs: list[bytes], batch_size: int) -> dict:
    (pw, pc), (ew, ec) = per_image_ms(obj.predict, inputs), per_image_ms(obj.explain, inputs)
    return {"predict_ms": pw, "explain_ms": ew,
            "batch_img_s": throughput(lambda xs: obj.predict_batch(xs, batch_size=batch_size), inputs),
            "predict_cpu_ms": pc, "explain_cpu_ms": ec}


def box_costs(p, n: int = 50) -> dict[str, float]:
    """Median milliseconds of the box refiner for one image (where the first model has one): it runs
    after the network, for the answers that show a box. The box head is part of the network graph."""
    m = p._members[0]
    if m.refiner is None:
        return {}
    size = p.preprocessing.img_size
    pixels = np.random.default_rng(0).integers(0, 256, (1, size, size), dtype=np.uint8)
    box = np.array([[0.40, 0.40, 0.55, 0.52]], dtype=np.float32)
    for _ in range(5):
        m.refiner(pixels, box)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        m.refiner(pixels, box)
        times.append((time.perf_counter() - t) * 1000)
    return {"box refiner": statistics.median(times)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", default=None,
                    help="checkpoint (repeat for an ensemble; default: the shipped model)")
    ap.add_argument("--n", type=int, default=60, help="distinct images (at least 50 for the report)")
    ap.add_argument("--data", default=None, help="a folder of images instead of the sample scans")
    ap.add_argument("--backend", default="auto", choices=("auto", "torch", "onnx", "int8"))
    ap.add_argument("--calibration", default=None,
                    help="folder of scans to calibrate int8 (default: the package's, else tests/data/sample)")
    ap.add_argument("--split", default=None,
                    help="split.json of the model's run: also measure accuracy on its validation images")
    ap.add_argument("--split-data", default=None, help="the Training folder that split.json refers to")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads for the reference and ONNX Runtime threads for ours (default: all CPUs)")
    ap.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    args = ap.parse_args(argv)

    import torch

    from braintumor import Predictor
    from braintumor.inference.graphs import default_calibration

    from braintumor.inference import shipped
    from braintumor.training.checkpoint import load_checkpoint

    if args.threads:
        torch.set_num_threads(args.threads)
    inputs = make_inputs(args.n, args.data)
    calibration = None
    if args.calibration or (args.backend in ("auto", "int8") and not default_calibration()):
        root = Path(args.calibration) if args.calibration else SAMPLE
        calibration = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))

    figures = {}
    # The reference first, with PyTorch's own thread count; then the Predictor as the served app runs
    # it (on ONNX Runtime, PyTorch on one thread: braintumor.inference.backends.give_cores_to_onnx).
    ref = Reference(load_checkpoint(shipped.load(args.model[0] if args.model else None).path))
    ref_threads = torch.get_num_threads()
    figures["reference"] = measure(ref, inputs, args.batch_size)
    t = time.perf_counter()
    p = Predictor.load(args.model if args.model else None, backend=args.backend, calibration=calibration,
                       threads=args.threads)
    if p.backend != "torch":
        from braintumor.inference.backends import give_cores_to_onnx

        give_cores_to_onnx()
    load_s = time.perf_counter() - t
    figures["ours"] = measure(p, inputs, args.batch_size)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
          f"{torch.__version__}; {len(inputs)} distinct images\n"
          f"ours: {p.name} ({p.arch}, {p.preprocessing.img_size} px), backend {p.backend}, loaded in "
          f"{load_s:.1f} s, torch threads {torch.get_num_threads()}\n"
          f"reference: torchvision resnet18, eager float32, 224 px, torch threads {ref_threads}, "
          "a new GradCAM per image")

    o, r = figures["ours"], figures["reference"]
    print(f"\n{'wall clock, medians':28}{'ours':>10}{'reference':>12}{'speed-up':>10}{'target':>10}")
    print(f"{'predict, batch 1 (ms)':28}{o['predict_ms']:>10.1f}{r['predict_ms']:>12.1f}"
          f"{r['predict_ms'] / o['predict_ms']:>9.1f}x{'>= 4x':>10}")
    print(f"{'predict + heat map (ms)':28}{o['explain_ms']:>10.1f}{r['explain_ms']:>12.1f}"
          f"{r['explain_ms'] / o['explain_ms']:>9.1f}x{'>= 10x':>10}")
    print(f"{'predict_batch (images/s)':28}{o['batch_img_s']:>10.1f}{r['batch_img_s']:>12.1f}"
          f"{o['batch_img_s'] / r['batch_img_s']:>9.1f}x{'>= 4x':>10}")
    print(f"{'heat map cost (ms)':28}{o['explain_ms'] - o['predict_ms']:>10.1f}"
          f"{r['explain_ms'] - r['predict_ms']:>12.1f}")
    print(f"{'CPU time, predict (ms)':28}{o['predict_cpu_ms']:>10.1f}{r['predict_cpu_ms']:>12.1f}"
          "   (all threads; a check when other work shares the machine)")
    print(f"{'CPU time, + Grad-CAM (ms)':28}{o['explain_cpu_ms']:>10.1f}{r['explain_cpu_ms']:>12.1f}")
    print(f"load average during the run: {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} CPUs")

    costs = box_costs(p)
    if costs:
        figures["box_ms"] = costs
        print("tumour box, batch 1, on the Predictor's backend (medians, ms): " +
              ", ".join(f"{k} {v:.1f}" for k, v in costs.items()))

    checks = eager_reference_checks(p, inputs)
    figures["checks"] = checks
    print(f"\naccuracy vs eager PyTorch of the same checkpoint ({len(inputs)} images): "
          f"max |prob diff| {checks['max_abs_prob_diff']:.2e}, label agreement {checks['label_agreement']:.0%}")
    if checks["cam_corr_min"] is not None:
        print(f"heat map vs pytorch-grad-cam on the whole eager model: correlation min "
              f"{checks['cam_corr_min']:.5f}, median {checks['cam_corr_median']:.5f} (target >= 0.99)")
    if args.split:
        figures["validation"] = split_accuracy(p, args.split, args.split_data, calibration or [])
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
