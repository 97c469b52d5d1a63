"""Predictions with heat maps: the Python API that the web app, the CLI and other code call.

    from braintumor import Predictor
    p = Predictor.load()                       # the shipped model
    p.predict("scan.jpg")                      # {"label", "confidence", "probabilities", "box", ...}
    p.explain("scan.jpg")                      # ... plus "heatmap" and "overlay"

Every input goes through :func:`braintumor.imaging.load_image` and then the checkpoint's own
:class:`~braintumor.inference.preprocess.Preprocessing`. The network runs once per image (ONNX
Runtime in int8 or float32; eager PyTorch in the training install: see ``Predictor.load``) and
returns the last block's activations (and the box head's outputs); the classifier (average pooling
and one linear layer), the heat map (:mod:`braintumor.inference.cam`), the decision and the
similar-case embedding are computed from them in NumPy, so an explanation costs little more than a
prediction. Nothing here imports PyTorch. A Predictor holds no per-call state and may be shared by
threads.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from PIL import Image

from . import cam as _cam
from . import decision as _decision
from .backends import BACKENDS, exact_runner, network_runner, refiner_runner
from ..errors import CheckpointError
from ..imaging import BURNED_IN_NOTICE, ImageError, ImageInput, has_burned_in_text, load_image
from .model_file import ModelFile
from .preprocess import Preprocessing

TTA_SHIFT = 0.04  # test-time shifts, as a fraction of the input side


@dataclass
class _Member:
    """One checkpoint of a Predictor: its network runner, its classifier layer and its refiner."""

    checkpoint: ModelFile
    network: Callable[[np.ndarray], dict]
    weight: np.ndarray  # the classifier's (K, C) weight, float64
    bias: np.ndarray  # ... and its (K,) bias
    refiner: Callable | None = None
    exact_factory: Callable | None = None  # the float32 network beside an int8 one (made on first use)
    _exact: Callable | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def exact(self) -> Callable:
        """The float32 network for the answers that int8 leaves too close to a boundary
        (:mod:`braintumor.inference.recheck`); the network itself when it is float32 already, or
        where this install can neither find nor make the float32 graph."""
        if self.exact_factory is None:
            return self.network
        with self._lock:
            if self._exact is None:
                self._exact = self.exact_factory() or self.network
        return self._exact

    @property
    def preprocessing(self) -> Preprocessing:
        return self.checkpoint.preprocessing

    @property
    def temperature(self) -> float:
        return self.checkpoint.temperature

    @property
    def backend(self) -> str:
        return self.network.name

    def logits(self, features: np.ndarray) -> np.ndarray:
        """The classifier on the last block's activations: average pooling, then the linear layer."""
        return pooled(features) @ self.weight.T + self.bias


def _make_member(mf: ModelFile, backend: str, threads: int | None,
                 calibration: Sequence[ImageInput] | None, device: str = "cpu") -> _Member:
    network = network_runner(mf, backend, threads, calibration, device)
    refiner = refiner_runner(mf, network.name, threads)
    exact = (lambda: exact_runner(mf, threads)) if network.name == "int8" else None
    return _Member(mf, network, *mf.head_weights(), refiner, exact)


def pooled(features: np.ndarray) -> np.ndarray:
    """(N, C, h, w) activations -> (N, C) float64 averages (the classifier's pooling, and the
    similar-case and out-of-distribution features)."""
    return np.asarray(features, dtype=np.float64).mean(axis=(2, 3))


@dataclass
class _Pass:
    """What one batch through every member gives: ``probs`` (N, C), calibrated and averaged over
    members (and views); per member the network's ``pixels`` (N, S, S) with the last block's
    activations of the unaugmented images (``parts``), its own calibrated probabilities (``each``),
    its raw logits of the unaugmented images (``logits``, N x C) and the box head's outputs
    (``boxes``: ``box_centre``, ``box_sides``, or empty)."""

    probs: np.ndarray
    parts: list[tuple[np.ndarray, np.ndarray]]
    each: list[np.ndarray]
    logits: list[np.ndarray]
    boxes: list[dict]
    gate: np.ndarray | None = None  # the images' gate inputs (ood.gate_inputs) once computed


@dataclass
class _Boxes:
    """The box head's answer for one batch: the ``member`` it belongs to, that member's network
    ``pixels`` (N, S, S), the boxes ``frac`` (N, 4, fractions of the input) and their ``score``s."""

    member: "_Member"
    pixels: np.ndarray
    frac: np.ndarray
    score: list[float]


def decode_boxes(centre: np.ndarray, sides: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The box head's answer: the box of each image's best cell, (N, 4) as x0, y0, x1, y1
    fractions of the input, and its score (N,) (see :mod:`braintumor.training.localize`)."""
    n, h, w = centre.shape
    flat = centre.reshape(n, -1)
    best = flat.argmax(axis=1)
    score = flat[np.arange(n), best]
    iy, ix = best // w, best % w
    yc, xc = ((iy + 0.5) / h).astype(np.float32), ((ix + 0.5) / w).astype(np.float32)
    d = np.asarray(sides, dtype=np.float32).reshape(n, 4, -1)[np.arange(n), :, best]
    boxes = np.stack([xc - d[:, 0], yc - d[:, 1], xc + d[:, 2], yc + d[:, 3]], axis=1).clip(0, 1)
    return boxes.astype(np.float32), 1.0 / (1.0 + np.exp(-score.astype(np.float64)))


def tta_views(pixels: np.ndarray, shift: float = TTA_SHIFT) -> np.ndarray:
    """(H, W) uint8 -> (6, H, W): the image, its mirror, and four shifts (black fill)."""
    h, w = pixels.shape
    d = max(1, round(shift * min(h, w)))
    views = [pixels, pixels[:, ::-1]]
    for dy, dx in ((0, d), (0, -d), (d, 0), (-d, 0)):
        v = np.zeros_like(pixels)
        ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
        xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
        v[yd, xd] = pixels[ys, xs]
        views.append(v)
    return np.ascontiguousarray(np.stack(views))


def box_in_image(frac: Sequence[float], size: tuple[int, int], prep: Preprocessing) -> list[int]:
    """A box in fractions of the network input -> [x0, y0, x1, y1] in pixels of the image."""
    left, top, side = prep.input_window(size)
    w, h = size
    x0, y0, x1, y1 = frac
    box = [left + x0 * side, top + y0 * side, left + x1 * side, top + y1 * side]
    lim = (w, h, w, h)
    return [int(min(max(round(v), 0), m)) for v, m in zip(box, lim)]


def display_pixels(gray: Image.Image, max_side: int = 1024) -> np.ndarray:
    """The image as uint8 grey pixels for display, longer side at most ``max_side``."""
    w, h = gray.size
    scale = min(1.0, max_side / max(w, h))
    if scale < 1.0:
        gray = gray.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)
    return np.asarray(gray.convert("L") if gray.mode != "L" else gray)


class Predictor:
    """A loaded model (or an ensemble of models) that classifies scans and explains its answers."""

    def __init__(self, checkpoints: Sequence[ModelFile], backend: str = "auto",
                 threads: int | None = None, version: str | None = None,
                 calibration: Sequence[ImageInput] | None = None,
                 policy: "_decision.DecisionPolicy | None" = None, device: str = "cpu"):
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if not checkpoints:
            raise ValueError("a Predictor needs at least one checkpoint")
        classes = tuple(checkpoints[0].classes)
        for ck in checkpoints[1:]:
            if tuple(ck.classes) != classes:
                raise CheckpointError(
                    f"{ck.path or ck.name}: classes {list(ck.classes)} differ from {list(classes)}; "
                    "an ensemble needs the same classes in the same order"
                )
        self.classes: tuple[str, ...] = classes
        self._members = [_make_member(ck, backend, threads, calibration, device) for ck in checkpoints]
        self._version = version
        # classified / uncertain / rejected (braintumor.inference.decision, braintumor.inference.ood)
        self._decider = _decision.Decider([ck.meta for ck in checkpoints], classes, policy)
        self._index = None  # similar-case index, found on first use
        self._index_checked = False

    # ---------------------------------------------------------------- loading and description
    @classmethod
    def load(cls, path: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
             backend: str = "auto", threads: int | None = None,
             calibration: Sequence[ImageInput] | None = None,
             policy: "_decision.DecisionPolicy | None" = None, device: str = "cpu") -> "Predictor":
        """The shipped model (``path=None``), one checkpoint, or a list of them (an ensemble).

        ``backend``: ``int8`` (ONNX Runtime, int8-quantised: the graph recorded with the checkpoint,
        or one calibrated on ``calibration`` images), ``onnx`` (ONNX Runtime float32), ``torch``
        (eager float32, training install) or ``auto`` (int8); see
        :mod:`braintumor.inference.backends`. A checkpoint without recorded graphs is converted on
        first load by the training install and cached (:func:`braintumor.config.cache_dir`); the
        light install says which install converts it. ``threads``: ONNX Runtime threads (default:
        the CPUs this process may use). ``policy``: how results are decided
        (:class:`braintumor.inference.decision.DecisionPolicy`: conformal coverage, default 0.95, or
        a confidence threshold; whether the out-of-distribution gate may reject). ``device``: where
        the torch backend runs the network (``cuda`` for a GPU; the rest stays on the CPU)."""
        from . import shipped

        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        version = None
        if path is None:
            checkpoints = [shipped.load_default()]
            version = shipped.manifest().get("version")
        elif isinstance(path, (str, os.PathLike)):
            checkpoints = [shipped.load(path)]
        else:
            paths = list(path)
            if not paths:
                raise ValueError("an empty list of checkpoints")
            checkpoints = [shipped.load(p) for p in paths]
        return cls(checkpoints, backend=backend, threads=threads, version=version, calibration=calibration,
                   policy=policy, device=device)

    @property
    def policy(self) -> "_decision.DecisionPolicy":
        """How results are decided: classified, uncertain (refer) or rejected."""
        return self._decider.policy

    @property
    def checkpoints(self) -> list[ModelFile]:
        return [m.checkpoint for m in self._members]

    @property
    def preprocessing(self) -> Preprocessing:
        """The (first) model's preprocessing; heat maps and overlays have its input size."""
        return self._members[0].preprocessing

    @property
    def name(self) -> str:
        return " + ".join(m.checkpoint.name for m in self._members)

    @property
    def version(self) -> str:
        if self._version:
            return str(self._version)
        versions = [str(m.checkpoint.meta.get("version") or m.checkpoint.sha256[:12]) for m in self._members]
        return " + ".join(versions)

    @property
    def sha256(self) -> str:
        """SHA-256 of the checkpoint file (several, comma-separated, for an ensemble)."""
        return ",".join(m.checkpoint.sha256 for m in self._members)

    @property
    def meta(self) -> dict:
        """The checkpoint's metadata (for an ensemble: ``{"ensemble": [meta, ...]}``)."""
        if len(self._members) == 1:
            return self._members[0].checkpoint.meta
        return {"ensemble": [m.checkpoint.meta for m in self._members]}

    @property
    def backend(self) -> str:
        return self._members[0].backend

    @property
    def arch(self) -> str:
        return " + ".join(m.checkpoint.arch for m in self._members)

    def info(self) -> dict:
        """A JSON-ready description of the model(s), for the web API and reports."""
        return {"name": self.name, "version": self.version, "arch": self.arch, "sha256": self.sha256,
                "classes": list(self.classes), "img_size": self.preprocessing.img_size,
                "backend": self.backend, "members": len(self._members)}

    def __repr__(self) -> str:
        return f"Predictor({self.name!r}, arch={self.arch!r}, backend={self.backend!r})"

    # ---------------------------------------------------------------- similar cases
    @property
    def index(self):
        """The similar-case index (:class:`braintumor.inference.similar.CaseIndex`) in use, or None. The
        shipped model uses the shipped index of the Training images unless another is attached."""
        if self._index is None and not self._index_checked:
            self._index_checked = True
            from . import shipped

            path = shipped.default_index_path()
            if path is not None and len(self._members) == 1 \
                    and self._members[0].checkpoint.sha256 == shipped.manifest().get("sha256"):
                from .similar import CaseIndex, CaseIndexError

                try:
                    self._index = CaseIndex.load(path, self.weights_digest, self.preprocessing.to_dict())
                except CaseIndexError:  # built for other weights: rebuild it (braintumor index)
                    self._index = None
        return self._index

    def attach_index(self, path: str | os.PathLike, backend: str = "numpy") -> None:
        """Use the index at ``path`` (built with this Predictor's first model, or refused)."""
        from .similar import CaseIndex

        self._index = CaseIndex.load(path, self.weights_digest, self.preprocessing.to_dict(), backend=backend)
        self._index_checked = True

    @property
    def weights_digest(self) -> str:
        """The digest of the first model's weights (what a similar-case index is built for)."""
        return self._members[0].checkpoint.weights_digest()

    def embed(self, images: Iterable[ImageInput]) -> np.ndarray:
        """(N, D) penultimate features of the first model (the pooled output of its last block),
        through the same preprocessing and backend as prediction."""
        grays = [load_image(im) for im in images]
        m = self._members[0]
        return pooled(m.network(np.stack([m.preprocessing.pixels(g) for g in grays]))["features"]).astype(np.float32)

    def similar(self, image: ImageInput, k: int = 5, slice_index: int | None = None,
                sha256: str | None = None) -> list[dict]:
        """The ``k`` most similar indexed scans, most similar first:
        ``[{"id", "label", "similarity", "near_copy"}]``; ``near_copy`` is true when the indexed
        scan is the same picture (the audit's method; ``sha256``, the file's digest, also finds an
        exact copy; it is computed for a path). Needs an index (:meth:`attach_index`).
        :meth:`predict` and :meth:`explain` give the same list with ``similar=k`` from their own
        forward pass."""
        sha = sha256 or _file_sha256(image)
        gray = load_image(image, slice_index=slice_index)
        return self._search(gray, self.embed([gray])[0], k, sha)

    def _search(self, gray: Image.Image, embedding: np.ndarray, k: int, sha256: str | None) -> list[dict]:
        from .similar import query_parts

        if self.index is None:
            raise ValueError("no similar-case index: attach one with Predictor.attach_index(FILE) "
                             "(built by: braintumor index DIR --out FILE)")
        desc, flipped = query_parts(gray)
        return self.index.search(np.asarray(embedding, dtype=np.float32), desc, flipped, k, sha256=sha256)

    def _add_similar(self, result: dict, image: ImageInput, gray: Image.Image, fp: "_Pass", k: int,
                     sha256: str | None, row: int = 0) -> None:
        """``similar``, ``near_copy`` and ``seen_before`` of an answer (image ``row`` of the batch),
        from the forward pass's own features; a rejected image gets none (it is no scan to compare)."""
        if k and result.get("decision") == "rejected":
            result.update(similar=[], near_copy=False, seen_before=None)
        elif k:
            from .similar import seen_before

            found = self._search(gray, pooled(fp.parts[0][1][row:row + 1])[0], k, sha256 or _file_sha256(image))
            result["similar"] = found
            result["near_copy"] = any(s["near_copy"] for s in found)
            result["seen_before"], notice = seen_before(found)
            if notice:
                result["seen_before_notice"] = notice

    # ---------------------------------------------------------------- public calls
    def predict(self, image: ImageInput, tta: bool = False, slice_index: int | None = None,
                similar: int = 0, sha256: str | None = None) -> dict:
        """{"label", "confidence", "probabilities": {class: p}, "decision", "box", ...} for one image;
        with ``similar=k`` also the ``k`` most similar indexed scans (see :meth:`similar`)."""
        gray = load_image(image, slice_index=slice_index)
        fp, answers = self._settled([gray], self._forward([gray], tta), tta)
        result = answers[0]
        self._add_similar(result, image, gray, fp, similar, sha256)
        return result

    def explain(self, image: ImageInput, target: str | int | None = None, cam_method: str = "gradcam",
                tta: bool = False, slice_index: int | None = None, similar: int = 0,
                sha256: str | None = None, overlay: bool = True) -> dict:
        """The prediction plus "heatmap" (H x W float32 in [0, 1] over the whole image as given; zero
        outside the square the network sees), "heatmap_input" (the same at the network's input
        size), "overlay" (a PIL RGB image: the scan with the heat map, longer side at most 1024
        pixels; left out with ``overlay=False``), "target" (the class explained: ``target`` or the
        predicted one) and "cam_method"; with ``similar=k`` the similar cases too.

        With ``tta`` the probabilities are averaged over the augmented views; the heat map is always
        that of the unaugmented image."""
        method = _cam.canonical_method(cam_method)  # an unknown method is refused before any work
        gray = load_image(image, slice_index=slice_index)
        fp, answers = self._settled([gray], self._forward([gray], tta), tta)
        result = answers[0]
        t = self._target_index(target, fp.probs[0])
        size = (self.preprocessing.img_size, self.preprocessing.img_size)
        heat = np.zeros(size, dtype=np.float32)
        for m, (pixels, feats) in zip(self._members, fp.parts):
            h = _cam.cam_maps(feats[:1], m.weight, [t], method, size=(m.preprocessing.img_size,) * 2)[0]
            heat += _cam.resize_heatmap(h, size)
        if len(self._members) > 1:
            lo, hi = float(heat.min()), float(heat.max())
            heat = (heat - lo) / (hi - lo) if hi > lo else np.zeros_like(heat)
        heat = heat.astype(np.float32)
        result["target"] = self.classes[t]
        result["cam_method"] = method
        result["heatmap_input"] = heat
        result["heatmap"] = _cam.heatmap_on_image(heat, gray.size, self.preprocessing)
        if overlay:
            result["overlay"] = _cam.render_overlay(display_pixels(gray), result["heatmap"])
        self._add_similar(result, image, gray, fp, similar, sha256)
        return result

    def predict_batch(self, images: Iterable[ImageInput], batch_size: int = 32, tta: bool = False,
                      slice_index: int | None = None, errors: str = "raise", similar: int = 0,
                      sha256: Sequence[str | None] | None = None) -> list[dict]:
        """predict() for many images, ``batch_size`` at a time; with ``similar=k`` each answer has
        its ``k`` most similar indexed scans (``sha256``: the files' digests, one per image, finds
        exact copies; computed for paths).

        ``errors="raise"`` stops at the first unreadable image (ImageError); ``errors="return"``
        puts ``{"error": message}`` in its place and goes on."""
        return self.outputs(images, batch_size, tta, slice_index, errors, arrays=False, similar=similar,
                            sha256=sha256)["answers"]

    def outputs(self, images: Iterable[ImageInput], batch_size: int = 32, tta: bool = False,
                slice_index: int | None = None, errors: str = "raise", keep_pixels: bool = False,
                show_progress: bool = False, desc: str = "predict", arrays: bool = True, similar: int = 0,
                sha256: Sequence[str | None] | None = None) -> dict:
        """Everything one batched forward pass computes for many images: the code that
        :meth:`predict` runs, and that ``evaluate``, ``calibrate``, ``finetune`` and the benchmarks
        call, so that their figures are those of the served answers on this backend.

        Returns ``answers`` (one predict() dict per image, or ``{"error": message}`` with
        ``errors="return"``) and, with ``arrays``, for the readable images in order: ``index``
        (their positions in ``images``), ``probabilities`` (N, C; served: calibrated, averaged over
        members and views), ``sizes`` (N, 2) as (width, height), ``box_score`` (N,) when a member
        has a box head, ``gate`` (N, 61): the out-of-distribution gate's inputs
        (:func:`~.ood.gate_inputs`), and per member (a list, one entry per checkpoint): ``logits`` (N, C, raw,
        of the unaugmented image), ``features`` (N, D: pooled last-block features), ``stats``
        (N, 43) and ``std`` (N,): the out-of-distribution statistics of its network pixels, and
        with ``keep_pixels`` its network ``pixels`` (N, S, S). Members may differ in architecture
        and input size, so the per-member arrays may differ in shape."""
        from ..progress import progress
        from .ood import gate_inputs, image_statistics

        if errors not in ("raise", "return"):
            raise ValueError("errors must be 'raise' or 'return'")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        members = len(self._members)
        answers: list[dict] = []
        whole = {k: [] for k in ("index", "probabilities", "sizes", "box_score", "gate")}
        each = {k: [[] for _ in range(members)] for k in ("logits", "features", "stats", "std")}
        if keep_pixels:
            each["pixels"] = [[] for _ in range(members)]
        chunk: list[tuple[int, Image.Image]] = []
        given: list = []
        bar = progress(total=len(images) if hasattr(images, "__len__") else None, desc=desc, unit="img",
                       disable=not show_progress or None)

        def flush():
            if not chunk:
                return
            grays = [g for _, g in chunk]
            fp, done = self._settled(grays, self._forward(grays, tta), tta)
            for n, ((i, gray), answer) in enumerate(zip(chunk, done)):
                answers[i] = answer
                self._add_similar(answer, given[i], gray, fp, similar, sha256[i] if sha256 else None, n)
            if arrays:
                whole["index"].append(np.array([i for i, _ in chunk], dtype=np.int64))
                whole["probabilities"].append(fp.probs)
                whole["sizes"].append(np.array([g.size for g in grays]))
                whole["gate"].append(fp.gate if fp.gate is not None else gate_inputs(grays))
                whole["box_score"].append(np.array([np.nan if a["box_score"] is None else a["box_score"]
                                                    for a in done]))
                for m, ((px, feats), logits) in enumerate(zip(fp.parts, fp.logits)):
                    each["logits"][m].append(logits)
                    each["features"][m].append(pooled(feats))
                    each["stats"][m].append(image_statistics(px))
                    each["std"][m].append(px.reshape(len(px), -1).std(axis=1))
                    if keep_pixels:
                        each["pixels"][m].append(px)
            bar.update(len(chunk))
            chunk.clear()

        for image in images:
            answers.append({})
            given.append(image if similar else None)  # a path's file digest finds exact copies
            try:
                chunk.append((len(answers) - 1, load_image(image, slice_index=slice_index)))
            except ImageError as exc:
                if errors == "raise":
                    bar.close()
                    raise
                answers[-1] = {"error": str(exc)}
                bar.update(1)
            if len(chunk) >= batch_size:
                flush()
        flush()
        bar.close()
        out: dict = {"answers": answers}
        if not arrays:
            return out
        for k, v in whole.items():
            if v:
                out[k] = np.concatenate(v)
        for k, per_member in each.items():
            if per_member[0]:
                out[k] = [np.concatenate(v) for v in per_member]
        if "box_score" in out and np.isnan(out["box_score"]).all():
            del out["box_score"]
        return out

    # ---------------------------------------------------------------- internals
    def _settled(self, grays: list[Image.Image], fp: "_Pass", tta: bool) -> tuple["_Pass", list[dict]]:
        """The answers of a forward pass, those that int8 leaves too close to a decision boundary
        computed again from the float32 graph (:mod:`braintumor.inference.recheck`); ``fp`` then
        holds the float32 numbers of those images, for their heat maps and similar cases.

        What depends on the image alone is computed once: the gate's inputs (``fp.gate``) serve
        both passes, and the tumour boxes (the refiner) are found for the settled answers only."""
        from .ood import gate_inputs
        from .recheck import borderline

        if fp.gate is None and self._decider.needs_inputs:
            fp.gate = gate_inputs(grays)
        answers = self._answers(grays, fp, boxes=False)
        rows = []
        if any(m.exact_factory is not None for m in self._members):
            ensemble = len(self._members) > 1
            rows = [n for n, a in enumerate(answers)
                    if borderline(self._decider, fp.probs[n], a, [e[n] for e in fp.each] if ensemble else (),
                                  a.get("box_score"))]
        if not rows:
            self._add_boxes(answers, grays, fp)
            return fp, answers
        again = self._forward([grays[n] for n in rows], tta, exact=True)
        again.gate = None if fp.gate is None else fp.gate[rows]
        for n, a in zip(rows, self._answers([grays[n] for n in rows], again, boxes=False)):
            answers[n] = a
        fp.probs[rows] = again.probs
        for m in range(len(self._members)):
            feats = np.array(fp.parts[m][1])
            feats[rows] = again.parts[m][1]
            fp.parts[m] = (fp.parts[m][0], feats)
            fp.each[m][rows] = again.each[m]
            fp.logits[m][rows] = again.logits[m]
            for k, v in again.boxes[m].items():
                fp.boxes[m][k] = np.array(fp.boxes[m][k])
                fp.boxes[m][k][rows] = v
        self._add_boxes(answers, grays, fp)
        return fp, answers

    def _forward(self, grays: list[Image.Image], tta: bool, exact: bool = False) -> "_Pass":
        """One batch of decoded images through every member (see :class:`_Pass`); with ``exact``,
        through the float32 network of an int8 member."""
        pixel_cache: dict[Preprocessing, np.ndarray] = {}
        total = np.zeros((len(grays), len(self.classes)), dtype=np.float64)
        parts, each, raw, boxes = [], [], [], []
        for m in self._members:
            prep = m.preprocessing
            if prep not in pixel_cache:
                pixel_cache[prep] = np.stack([prep.pixels(g) for g in grays])
            pixels = pixel_cache[prep]
            x = np.concatenate([tta_views(p) for p in pixels]) if tta else pixels
            out = (m.exact() if exact else m.network)(x)
            logits = m.logits(out["features"])
            probs = _decision.softmax(logits, m.temperature)
            views = len(x) // len(pixels)
            if views > 1:  # the views' probabilities averaged; the rest of the unaugmented images
                probs = probs.reshape(len(pixels), views, -1).mean(axis=1)
                out, logits = {k: v[::views] for k, v in out.items()}, logits[::views]
            total += probs
            parts.append((pixels, out["features"]))
            each.append(probs)
            raw.append(logits)
            boxes.append({k: v for k, v in out.items() if k.startswith("box_")})
        return _Pass(total / len(self._members), parts, each, raw, boxes)

    def _result(self, probs: np.ndarray) -> dict:
        """The result dict of one image from its (C,) probabilities. Plain Python types only."""
        probs = np.asarray(probs, dtype=np.float64)
        probs = probs / probs.sum()
        i = int(probs.argmax())
        return {
            "label": self.classes[i],
            "confidence": float(probs[i]),
            "probabilities": {c: float(p) for c, p in zip(self.classes, probs)},
        }

    def _answers(self, grays: list[Image.Image], fp: "_Pass", boxes: bool = True) -> list[dict]:
        """Label, probabilities, decision and tumour box of each image; for an ensemble, each
        member's vote (``members``, ``agreement``), and a disagreement makes the answer uncertain.
        With ``boxes=False`` every ``box`` is None, for :meth:`_add_boxes` to fill in later."""
        probs, parts, each = fp.probs, fp.parts, fp.each
        heads = self._box_head(fp)
        scores = heads.score if heads is not None else [None] * len(grays)
        decisions = self._decisions(grays, probs, parts, scores, fp.gate)
        out = []
        for n, (p, d, score) in enumerate(zip(probs, decisions, scores)):
            r = self._result(p) | d
            if len(each) > 1:
                self._consensus(r, [e[n] for e in each])
            r["box"] = None  # filled below for answers that show a tumour
            r["box_score"] = score
            r["headline"] = _decision.headline(r)  # what the answer leads with, everywhere
            if has_burned_in_text(grays[n]):
                r["burned_in_text"] = True
                r["privacy_notice"] = BURNED_IN_NOTICE
            out.append(r)
        if boxes:
            self._add_boxes(out, grays, fp, heads)
        return out

    def _add_boxes(self, answers: list[dict], grays: list[Image.Image], fp: "_Pass",
                   heads: "_Boxes | None" = None) -> None:
        """The ``box`` of each answer that shows a tumour (not "no tumour", not rejected)."""
        heads = heads if heads is not None else self._box_head(fp)
        wanted = [n for n, r in enumerate(answers)
                  if r["label"] != _decision.NO_TUMOUR and r["decision"] != "rejected"]
        for n, box in self._tumour_boxes(heads, grays, wanted).items():
            answers[n]["box"] = box

    def _consensus(self, r: dict, member_probs: list[np.ndarray]) -> None:
        votes = []
        for m, p in zip(self._members, member_probs):
            i = int(np.argmax(p))
            votes.append({"name": m.checkpoint.name, "label": self.classes[i], "confidence": float(p[i])})
        r["members"] = votes
        r["agreement"] = sum(v["label"] == r["label"] for v in votes)
        if r["agreement"] < len(votes) and r.get("decision") == "classified":
            others = sorted({v["label"] for v in votes if v["label"] != r["label"]})
            r["decision"] = "uncertain"
            r["reason"] = (f"the models disagree: {r['agreement']} of {len(votes)} say {r['label']}, "
                           f"others say {', '.join(others)}")
            r["prediction_set"] = sorted(set(r.get("prediction_set") or [r["label"]]) | set(others),
                                         key=self.classes.index)

    def _box_head(self, fp: "_Pass") -> "_Boxes | None":
        """The box head's answer of the first member that has one (None without a box head)."""
        for m, (pixels, _), out in zip(self._members, fp.parts, fp.boxes):
            if out:
                frac, score = decode_boxes(out["box_centre"], out["box_sides"])
                return _Boxes(m, pixels, frac, [float(s) for s in score])
        return None

    def _tumour_boxes(self, heads: "_Boxes | None", grays: list[Image.Image], wanted: list[int]
                      ) -> dict[int, list[int]]:
        """The tumour boxes of the images ``wanted`` (those whose answer shows one), in pixels of the
        image as given ([x0, y0, x1, y1]). A member with a box refiner corrects the head's box from
        the input pixels around it; it runs for these images only, as it costs milliseconds each."""
        if heads is None or not wanted:
            return {}
        frac = heads.frac[wanted]
        if heads.member.refiner is not None:
            frac = heads.member.refiner(heads.pixels[wanted], frac)
        return {i: box_in_image(f.tolist(), grays[i].size, heads.member.preprocessing)
                for i, f in zip(wanted, frac)}

    def _decisions(self, grays: list[Image.Image], probs: np.ndarray,
                   parts: list[tuple[np.ndarray, np.ndarray]],
                   box_scores: list[float | None] | None = None, inputs: np.ndarray | None = None) -> list[dict]:
        """"decision", "reason", "prediction_set" and "ood_score" of each image
        (:class:`braintumor.inference.decision.Decider`), from what :meth:`_forward` computed and
        the images' gate ``inputs`` (computed here when the gate needs them and none are given)."""
        from .ood import gate_inputs

        if inputs is None and self._decider.needs_inputs:
            inputs = gate_inputs(grays)
        return self._decider([g.size for g in grays], probs, [px for px, _ in parts],
                             [pooled(f) for _, f in parts], box_scores,
                             inputs if self._decider.needs_inputs else None)

    def _target_index(self, target: str | int | None, probs: np.ndarray) -> int:
        if target is None:
            return int(np.argmax(probs))
        if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
            if 0 <= int(target) < len(self.classes):
                return int(target)
        elif isinstance(target, str) and target in self.classes:
            return self.classes.index(target)
        raise ValueError(f"unknown target class {target!r}; choose one of {', '.join(self.classes)}")


def _file_sha256(image: ImageInput) -> str | None:
    """The SHA-256 of a file given by its path (an exact copy in the index is found by it)."""
    import hashlib

    return hashlib.sha256(Path(image).read_bytes()).hexdigest() if isinstance(image, (str, os.PathLike)) else None
