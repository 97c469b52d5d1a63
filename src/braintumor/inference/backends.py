"""How a checkpoint's network runs: ONNX Runtime in int8 or float32 (serving), or eager PyTorch
(the reference, training install only).

:func:`network_runner` and :func:`refiner_runner` are the one place that picks and builds a backend;
:class:`braintumor.Predictor` calls them for every checkpoint it loads, so the prediction,
evaluation and calibration commands all run the same code. A network runner takes the network's
grey pixels (N, S, S) uint8 (:meth:`~.preprocess.Preprocessing.pixels`; the normalisation is part of
the graph) and returns ``features`` (the last block's output) and, with a box head, ``box_centre``
and ``box_sides``, all NumPy.

The graphs come from the checkpoint's record (the package manifest or a sidecar written by
``braintumor export``; :mod:`braintumor.inference.graphs`); without one, the training install
converts the checkpoint on first load (:mod:`braintumor.training.conversion`) and keeps the result in the disk
cache. The light install, which has no PyTorch, says in one line which install converts it.
"""

from __future__ import annotations

import os
import sys
from typing import Callable, Sequence

import numpy as np

from ..config import BACKENDS
from ..errors import CheckpointError, NeedsTrainingInstall, ToolError
from ..imaging import ImageInput
from . import graphs
from .model_file import ModelFile


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


def _session(model_bytes: bytes, threads: int | None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads or default_threads()
    so.inter_op_num_threads = 1
    # Threads wait asleep rather than spinning: on two cores shared with request threads or other
    # processes, spinning threads steal the CPU the work needs (measured 1.5x slower).
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


class OnnxNetwork:
    """The network graph run by ONNX Runtime: float32 (``onnx``, the same numbers as eager to
    ~1e-6) or int8-quantised with per-channel weights and calibrated activations (``int8``)."""

    def __init__(self, model_bytes: bytes, name: str, threads: int | None = None):
        self.session = _session(model_bytes, threads)
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.name = name

    def __call__(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        out = self.session.run(None, {"pixels": np.ascontiguousarray(pixels, dtype=np.uint8)})
        return dict(zip(self.outputs, out))


class OnnxRefiner:
    """The box refiner graph: (N, S, S) uint8 input pixels and (N, 4) boxes -> corrected (N, 4)."""

    def __init__(self, model_bytes: bytes, threads: int | None = None):
        self.session = _session(model_bytes, threads)

    def __call__(self, pixels: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        x = (np.asarray(pixels, dtype=np.float32) / np.float32(255.0))[:, None]
        return self.session.run(None, {"pixels": np.ascontiguousarray(x),
                                       "boxes": np.asarray(boxes, dtype=np.float32)})[0]


def _conversion(mf: ModelFile, what: str):
    """The training install's converter, or the one-line error that names that install."""
    try:
        from ..training import conversion
    except ImportError:
        raise NeedsTrainingInstall(f"{mf.path or mf.name}: {what}") from None
    return conversion


def _graph(mf: ModelFile, kind: str, calibration: Sequence[ImageInput] | None) -> bytes:
    """The ``kind`` graph of a checkpoint: its recorded one (with no calibration of the caller's
    own), else the cached one, else converted now (training install)."""
    why = ""
    if calibration is None or kind == "refiner":
        data, why = graphs.recorded_graph(mf, kind)
        if data is not None:
            return data
    calib = None
    if kind == "int8":
        images = graphs.default_calibration() if calibration is None else list(calibration)
        if not images:
            raise CheckpointError(f"{mf.path or mf.name}: int8 needs calibration images (calibration=..., "
                                  "or $BRAINTUMOR_CALIBRATION)")
        calib = graphs.calibration_inputs(mf.preprocessing, images)
    key = graphs.cache_key(mf, kind, calib)
    data = graphs.cached(key, None)
    if data is not None:
        return data
    conv = _conversion(mf, f"no {kind} ONNX graph for this checkpoint ({why or 'a calibration of its own'}); "
                           "converting it")

    def build() -> bytes:
        if kind == "refiner":
            return conv.export_refiner(mf)
        fp32 = conv.export_network(mf)
        return conv.quantize_network(fp32, calib) if kind == "int8" else fp32

    return graphs.cached(key, build)


def network_runner(mf: ModelFile, backend: str = "auto", threads: int | None = None,
                   calibration: Sequence[ImageInput] | None = None, device: str = "cpu") -> Callable:
    """What runs a checkpoint's network on ``backend``: ``int8`` (ONNX Runtime, int8-quantised: the
    recorded graph, or one calibrated on ``calibration`` images), ``onnx`` (ONNX Runtime float32),
    ``torch`` (eager float32 on ``device``, training install) or ``auto`` (int8 when ONNX Runtime
    is installed, else torch). A damaged graph or a missing install raises its one-line error; when
    ONNX Runtime itself fails, a named backend raises one too and ``auto`` falls back to torch with
    a warning where the training install is there."""
    import warnings

    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    want = backend
    if backend == "auto":
        want = "int8" if onnx_available() else "torch"
    if want == "torch":
        return _conversion(mf, "the torch backend").TorchNetwork(mf, device)
    try:
        return OnnxNetwork(_graph(mf, want, calibration), want, threads)
    except ToolError:  # a damaged graph, a missing install: said as it is, never run around
        raise
    except Exception as exc:
        if backend != "auto":
            message = f"{mf.path or mf.name}: the {want} backend is unavailable ({type(exc).__name__}: {exc})"
            raise CheckpointError(message.splitlines()[0]) from None
        conv = _conversion(mf, f"the int8 backend failed ({type(exc).__name__}) and the torch backend")
        warnings.warn(f"ONNX Runtime backend unavailable ({exc}); using PyTorch", RuntimeWarning)
        return conv.TorchNetwork(mf, device)


def exact_runner(mf: ModelFile, threads: int | None = None) -> Callable | None:
    """The float32 network graph of a checkpoint served in int8, for the answers int8 leaves too
    close to a decision boundary (:mod:`braintumor.inference.recheck`); None where there is none
    and this install cannot make one (the light install, for a checkpoint exported before the
    float32 graph was written beside the int8 one)."""
    try:
        return OnnxNetwork(_graph(mf, "onnx", None), "onnx", threads)
    except NeedsTrainingInstall:
        return None


def refiner_runner(mf: ModelFile, backend: str, threads: int | None = None) -> Callable | None:
    """What runs a checkpoint's box refiner (None without one): eager PyTorch beside the torch
    backend, else the refiner's ONNX graph (float32)."""
    if not mf.has_box_refiner:
        return None
    if backend == "torch":
        return _conversion(mf, "the torch backend").TorchRefiner(mf)
    return OnnxRefiner(_graph(mf, "refiner", None), threads)


def give_cores_to_onnx() -> None:
    """For a process that serves answers through ONNX Runtime and has imported PyTorch anyway (a
    training install running other work): PyTorch's OpenMP threads, spinning between small steps,
    slowed ONNX Runtime down 2-5x on two cores, so PyTorch is set to one thread for the whole
    process. A process that never imported PyTorch is left alone (and PyTorch is not imported)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() > 1:
        torch.set_num_threads(1)
