"""How a checkpoint's body runs: eager PyTorch, ONNX Runtime in float32, or int8-quantised ONNX
Runtime, and the disk cache of converted models.

:func:`body_runner` is the one place that picks and builds a backend; :class:`braintumor.Predictor`
calls it for every checkpoint it loads, so the prediction, evaluation and calibration commands all
run the same body code.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..checkpoint import Checkpoint, CheckpointError
from ..config import BACKENDS, cache_dir
from ..imaging import ImageInput, load_image
from .preprocess import Preprocessing

CALIBRATION_MAX = 64  # images used to calibrate int8 activation ranges
INT8_RECIPE = "qdq/per-channel/minmax/float-conv1"  # part of the cache key: change it with the recipe
CACHE_KEEP = 8  # converted models kept on disk (45 MB float32, 11 MB int8 for ResNet18)


def onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def default_threads() -> int:
    """The CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class TorchBody:
    """The body in eager PyTorch (float32): the reference, and the fallback. On a GPU (``device``)
    the body runs there and its features come back to the CPU, where the head and Grad-CAM run."""

    name = "torch"

    def __init__(self, body: nn.Module, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.body = body.to(self.device) if self.device.type != "cpu" else body

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            if self.device.type == "cpu":
                return self.body(x)
            return self.body(x.to(self.device)).float().cpu()


class OnnxBody:
    """The body run by ONNX Runtime: float32 (``onnx``, the same numbers as eager to ~1e-6) or
    int8-quantised with per-channel weights and calibrated activations (``int8``)."""

    def __init__(self, model_bytes: bytes, name: str, threads: int | None = None):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = threads or default_threads()
        so.inter_op_num_threads = 1
        # Threads wait asleep rather than spinning: on two cores shared with request threads or
        # other processes, spinning threads steal the CPU the work needs (measured 1.5x slower).
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.log_severity_level = 3
        self.session = ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
        self.name = name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {"x": np.ascontiguousarray(x.numpy(), dtype=np.float32)})[0]
        return torch.from_numpy(out)


def export_onnx(body: nn.Module, img_size: int) -> bytes:
    """The body as an ONNX model (float32, dynamic batch), in memory."""
    import warnings

    buf = io.BytesIO()
    x = torch.zeros(1, 3, img_size, img_size)
    with warnings.catch_warnings():  # the TorchScript-based exporter announces its deprecation
        warnings.simplefilter("ignore")
        torch.onnx.export(body, (x,), buf, input_names=["x"], output_names=["features"],
                          dynamic_axes={"x": {0: "n"}, "features": {0: "n"}}, opset_version=17,
                          dynamo=False)
    return buf.getvalue()


def quantize_int8(model_fp32: bytes, calibration: np.ndarray) -> bytes:
    """Static int8 quantisation (QDQ, per-channel int8 weights, uint8 activations whose ranges are
    calibrated on ``calibration``, normalised (N, 3, S, S) float32 inputs).

    The first convolution stays in float32: quantising the image itself cost 1 label in 849 on the
    validation split, and keeping it gives the eager labels on all of them (benchmarks/inference.py)."""
    import tempfile

    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"x": calibration[i:i + 1]} for i in range(len(calibration))])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory(prefix="braintumor-int8-") as tmp:
        src, pre, out = (Path(tmp) / n for n in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        src.write_bytes(model_fp32)
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        first_conv = next(n.name for n in onnx.load(str(pre)).graph.node if n.op_type == "Conv")
        quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=[first_conv])
        return out.read_bytes()


def default_calibration() -> list[Path]:
    """Scans to calibrate int8 activations: the folder named by $BRAINTUMOR_CALIBRATION, else the
    scans shipped with the package (``braintumor/sample/``); none when neither is there."""
    from importlib import resources

    from ..formats import IMAGE_SUFFIXES

    env = os.environ.get("BRAINTUMOR_CALIBRATION")
    root = Path(env) if env else Path(str(resources.files("braintumor") / "sample"))
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[:CALIBRATION_MAX]


def _cached(key: str, build: Callable[[], bytes]) -> bytes:
    """``build()``, kept on disk under ``key`` when a cache folder is usable (the newest
    CACHE_KEEP files are kept)."""
    folder = cache_dir()
    path = folder / f"{key}.onnx" if folder else None
    if path is not None and path.is_file():
        try:
            data = path.read_bytes()
            os.utime(path)  # recently used: kept when older files are pruned
            return data
        except OSError:
            pass
    data = build()
    if path is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
            old = sorted(folder.glob("*.onnx"), key=lambda f: f.stat().st_mtime, reverse=True)
            for stale in old[CACHE_KEEP:]:
                stale.unlink(missing_ok=True)
        except OSError:
            pass
    return data


def weights_digest(ck: Checkpoint) -> str:
    """SHA-256 of the architecture and weights alone: a converted model stays valid when only the
    checkpoint's metadata changes (temperature, thresholds)."""
    import hashlib

    h = hashlib.sha256(ck.arch.encode())
    for name in sorted(ck.state_dict):
        t = ck.state_dict[name].detach().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def _calibration_inputs(prep: Preprocessing, images: Sequence[ImageInput]) -> np.ndarray:
    """Calibration images through load_image and the checkpoint's preprocessing, with mirrors."""
    pixels = np.stack([prep.pixels(load_image(im)) for im in images])
    pixels = np.concatenate([pixels, pixels[:, :, ::-1]])
    return np.ascontiguousarray(prep.normalize(torch.from_numpy(np.ascontiguousarray(pixels))).numpy())


def body_runner(ck: Checkpoint, body: nn.Module, backend: str = "auto", threads: int | None = None,
                calibration: Sequence[ImageInput] | None = None, device: str = "cpu") -> Callable:
    """What runs a checkpoint's body (images (N, 3, S, S) -> last block's features) on ``backend``:
    ``torch`` (eager float32, on ``device``), ``onnx`` (ONNX Runtime float32), ``int8`` (ONNX
    Runtime, int8-quantised, activation ranges calibrated on ``calibration`` images) or ``auto``
    (int8 when ONNX Runtime and calibration images are there, else onnx, else torch). Converted
    models are cached on disk (:func:`braintumor.config.cache_dir`). A named backend that cannot run
    raises CheckpointError; ``auto`` falls back to torch with a warning."""
    import hashlib
    import warnings

    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    want = backend
    if backend == "auto":
        want = ("int8" if calibration else "onnx") if onnx_available() else "torch"
    if want == "torch":
        return TorchBody(body, device)
    size = ck.preprocessing.img_size
    try:
        import onnxruntime as ort

        tag = f"{weights_digest(ck)}|{size}|{ort.__version__}|{torch.__version__}"
        if want == "int8":
            if not calibration:
                raise ValueError("int8 needs calibration images (calibration=...)")
            calib = _calibration_inputs(ck.preprocessing, calibration)
            tag8 = f"{tag}|{INT8_RECIPE}|{hashlib.sha256(calib.tobytes()).hexdigest()}"
            # only the int8 model is kept (11 MB for ResNet18, not 45 MB more for float32)
            int8 = _cached(_key("int8", tag8, ck), lambda: quantize_int8(export_onnx(body, size), calib))
            return OnnxBody(int8, "int8", threads)
        fp32 = _cached(_key("fp32", tag, ck), lambda: export_onnx(body, size))
        return OnnxBody(fp32, "onnx", threads)
    except Exception as exc:
        if backend != "auto":
            raise CheckpointError(
                f"{ck.path or ck.name}: the {want} backend is unavailable ({type(exc).__name__}: {exc})"
            ) from None
        warnings.warn(f"ONNX Runtime backend unavailable ({exc}); using PyTorch", RuntimeWarning)
        return TorchBody(body, device)


def give_cores_to_onnx() -> None:
    """For a process that serves answers through ONNX Runtime (``braintumor serve``, ``predict``,
    ``evaluate``): PyTorch then only does small steps (normalisation, the head, Grad-CAM on the last
    block's output), and its OpenMP threads, spinning between them, slowed ONNX Runtime down 2-5x
    on two cores. This gives ONNX Runtime the cores by running PyTorch on one thread, for the whole
    process: a library never does this on its own, since a caller's own PyTorch work would slow
    down too."""
    if torch.get_num_threads() > 1:
        torch.set_num_threads(1)


def _key(kind: str, tag: str, ck: Checkpoint) -> str:
    """A cache file name: input size, kind and a hash of everything the file depends on."""
    import hashlib

    return f"{ck.preprocessing.img_size}-{kind}-{hashlib.sha256(tag.encode()).hexdigest()[:24]}"
