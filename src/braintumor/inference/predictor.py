"""Predictions with Grad-CAM: the Python API that the web app, the CLI and other code call.

    from braintumor import Predictor
    p = Predictor.load()                       # the shipped model
    p.predict("scan.jpg")                      # {"label", "confidence", "probabilities", "box", ...}
    p.explain("scan.jpg")                      # ... plus "heatmap" and "overlay"

Every input goes through :func:`braintumor.imaging.load_image` and then the checkpoint's own
:class:`~braintumor.inference.preprocess.Preprocessing`. The network is split at its last convolutional block
(:func:`braintumor.inference.cam.split_network`): the body runs once per image (eager PyTorch, or ONNX Runtime
in float32 or int8 when installed: see ``Predictor.load``), and Grad-CAM runs on the head alone, so
an explanation costs little more than a prediction and no hook is ever put on the shared model. A
Predictor holds no per-call state and may be shared by threads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from . import cam as _cam
from . import decision as _decision
from .backends import BACKENDS, body_runner, default_calibration
from ..checkpoint import Checkpoint, CheckpointError
from ..imaging import ImageError, ImageInput, load_image
from .preprocess import Preprocessing

TTA_SHIFT = 0.04  # test-time shifts, as a fraction of the input side


@dataclass
class _Member:
    """One checkpoint of a Predictor: its body runner and its head (pooling + classifier)."""

    checkpoint: Checkpoint
    body: Callable[[torch.Tensor], torch.Tensor]
    head: nn.Module
    model: nn.Module  # the whole eager network (shares the head's modules)

    @property
    def preprocessing(self) -> Preprocessing:
        return self.checkpoint.preprocessing

    @property
    def temperature(self) -> float:
        return self.checkpoint.temperature

    @property
    def backend(self) -> str:
        return self.body.name


def _make_member(ck: Checkpoint, backend: str, threads: int | None,
                 calibration: Sequence[ImageInput] | None, device: str = "cpu") -> _Member:
    model = ck.build()
    for p in model.parameters():
        p.requires_grad_(False)  # gradients reach the per-call CAM input only, never shared weights
    body, head = _cam.split_network(model, ck.arch)
    return _Member(ck, body_runner(ck, body, backend, threads, calibration, device), head, model)


@dataclass
class _Pass:
    """What one batch through every member gives: ``probs`` (N, C), calibrated and averaged over
    members (and views); per member the network's ``pixels`` (N, S, S) with the last block's
    features of the unaugmented images (``parts``), its own calibrated probabilities (``each``)
    and its raw logits of the unaugmented images (``logits``, N x C)."""

    probs: np.ndarray
    parts: list[tuple[np.ndarray, torch.Tensor]]
    each: list[np.ndarray]
    logits: list[np.ndarray]


@dataclass
class _Boxes:
    """The box head's answer for one batch: the ``member`` it belongs to, that member's network
    ``pixels`` (N, S, S), the boxes ``frac`` (N, 4, fractions of the input) and their ``score``s."""

    member: "_Member"
    pixels: np.ndarray
    frac: torch.Tensor
    score: list[float]


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

    def __init__(self, checkpoints: Sequence[Checkpoint], backend: str = "auto",
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
        if calibration is None and backend in ("auto", "int8"):
            calibration = default_calibration()
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

        ``backend``: ``torch`` (eager float32), ``onnx`` (ONNX Runtime float32), ``int8`` (ONNX
        Runtime, int8-quantised, calibrated on ``calibration`` images: the scans shipped in
        ``braintumor/sample`` by default) or ``auto`` (int8 when ONNX Runtime and calibration images
        are there, else onnx, else torch); see :mod:`braintumor.inference.backends`. ``threads``: ONNX Runtime
        threads (default: the CPUs this process may use). Converted models are cached (see
        :func:`braintumor.config.cache_dir`). ``policy``: how results are decided
        (:class:`braintumor.inference.decision.DecisionPolicy`: conformal coverage, default 0.95, or a
        confidence threshold; whether the out-of-distribution gate may reject). ``device``: where
        the torch backend runs the body (``cuda`` for a GPU; the head and Grad-CAM stay on the CPU).

        The Predictor leaves PyTorch's thread count as it is; a process that serves answers through
        ONNX Runtime may call :func:`braintumor.inference.backends.give_cores_to_onnx`."""
        from .. import shipped

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
    def checkpoints(self) -> list[Checkpoint]:
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
            from .. import shipped

            path = shipped.default_index_path()
            if path is not None and len(self._members) == 1 \
                    and self._members[0].checkpoint.sha256 == shipped.manifest().get("sha256"):
                from .similar import CaseIndex, CaseIndexError

                try:
                    self._index = CaseIndex.load(path, model_sha256=self._members[0].checkpoint.sha256)
                except CaseIndexError:  # e.g. the shipped model was recalibrated: rebuild the index
                    self._index = None
        return self._index

    def attach_index(self, path: str | os.PathLike, backend: str = "numpy") -> None:
        """Use the index at ``path`` (built with this Predictor's first model, or refused)."""
        from .similar import CaseIndex

        self._index = CaseIndex.load(path, model_sha256=self._members[0].checkpoint.sha256, backend=backend)
        self._index_checked = True

    def embed(self, images: Iterable[ImageInput]) -> np.ndarray:
        """(N, D) penultimate features of the first model (the pooled output of its last block),
        through the same preprocessing and backend as prediction."""
        from .ood import pooled_features

        grays = [load_image(im) for im in images]
        m = self._members[0]
        pixels = np.stack([m.preprocessing.pixels(g) for g in grays])
        feats = m.body(m.preprocessing.normalize(torch.from_numpy(pixels)))
        return pooled_features(feats).astype(np.float32)

    def similar(self, image: ImageInput, k: int = 5, slice_index: int | None = None,
                sha256: str | None = None) -> list[dict]:
        """The ``k`` most similar indexed scans, most similar first:
        ``[{"id", "label", "similarity", "near_copy"}]``; ``near_copy`` is true when the indexed
        scan is the same picture (the audit's method; ``sha256``, the file's digest, also finds an
        exact copy; it is computed for a path). Needs an index (:meth:`attach_index`)."""
        import hashlib

        from .similar import query_parts

        if self.index is None:
            raise ValueError("no similar-case index: attach one with Predictor.attach_index(FILE) "
                             "(built by: braintumor index DIR --out FILE)")
        sha = sha256 or (hashlib.sha256(Path(image).read_bytes()).hexdigest()
                         if isinstance(image, (str, os.PathLike)) else None)
        gray = load_image(image, slice_index=slice_index)
        desc, flipped = query_parts(gray)
        return self.index.search(self.embed([gray])[0], desc, flipped, k, sha256=sha)

    # ---------------------------------------------------------------- public calls
    def predict(self, image: ImageInput, tta: bool = False, slice_index: int | None = None) -> dict:
        """{"label", "confidence", "probabilities": {class: p}} for one image."""
        gray = load_image(image, slice_index=slice_index)
        return self._answers([gray], self._forward([gray], tta))[0]

    def explain(self, image: ImageInput, target: str | int | None = None, cam_method: str = "gradcam",
                tta: bool = False, slice_index: int | None = None) -> dict:
        """The prediction plus "heatmap" (H x W float32 in [0, 1] over the whole image as given; zero
        outside the centre square the network sees), "heatmap_input" (the same at the network's
        input size), "overlay" (a PIL RGB image: the scan with the heat map, longer side at most
        1024 pixels), "target" (the class explained: ``target`` or the predicted one) and
        "cam_method".

        With ``tta`` the probabilities are averaged over the augmented views; the heat map is always
        that of the unaugmented image."""
        method = _cam.canonical_method(cam_method)  # an unknown method is refused before any work
        gray = load_image(image, slice_index=slice_index)
        fp = self._forward([gray], tta)
        result = self._answers([gray], fp)[0]
        t = self._target_index(target, fp.probs[0])
        size = (self.preprocessing.img_size, self.preprocessing.img_size)
        heat = np.zeros(size, dtype=np.float32)
        for m, (pixels, feats) in zip(self._members, fp.parts):
            h = _cam.cam_on_features(m.head, feats[:1], [t], method,
                                     size=(m.preprocessing.img_size,) * 2)[0]
            heat += _cam.resize_heatmap(h, size)
        if len(self._members) > 1:
            lo, hi = float(heat.min()), float(heat.max())
            heat = (heat - lo) / (hi - lo) if hi > lo else np.zeros_like(heat)
        heat = heat.astype(np.float32)
        result["target"] = self.classes[t]
        result["cam_method"] = method
        result["heatmap_input"] = heat
        result["heatmap"] = _cam.heatmap_on_image(heat, gray.size, self.preprocessing)
        result["overlay"] = _cam.render_overlay(display_pixels(gray), result["heatmap"])
        return result

    def predict_batch(self, images: Iterable[ImageInput], batch_size: int = 32, tta: bool = False,
                      slice_index: int | None = None, errors: str = "raise") -> list[dict]:
        """predict() for many images, ``batch_size`` at a time.

        ``errors="raise"`` stops at the first unreadable image (ImageError); ``errors="return"``
        puts ``{"error": message}`` in its place and goes on."""
        return self.outputs(images, batch_size, tta, slice_index, errors, arrays=False)["answers"]

    def outputs(self, images: Iterable[ImageInput], batch_size: int = 32, tta: bool = False,
                slice_index: int | None = None, errors: str = "raise", keep_pixels: bool = False,
                show_progress: bool = False, desc: str = "predict", arrays: bool = True) -> dict:
        """Everything one batched forward pass computes for many images: the code that
        :meth:`predict` runs, and that ``evaluate``, ``calibrate``, ``finetune`` and the benchmarks
        call, so that their figures are those of the served answers on this backend.

        Returns ``answers`` (one predict() dict per image, or ``{"error": message}`` with
        ``errors="return"``) and, with ``arrays``, for the readable images in order: ``index``
        (their positions in ``images``), ``probabilities`` (N, C; served: calibrated, averaged over
        members and views), ``sizes`` (N, 2) as (width, height), ``box_score`` (N,) when a member
        has a box head, and per member (a list, one entry per checkpoint): ``logits`` (N, C, raw,
        of the unaugmented image), ``features`` (N, D: pooled last-block features), ``stats``
        (N, 43) and ``std`` (N,): the out-of-distribution statistics of its network pixels, and
        with ``keep_pixels`` its network ``pixels`` (N, S, S). Members may differ in architecture
        and input size, so the per-member arrays may differ in shape."""
        from ..data import progress
        from .ood import image_statistics, pooled_features

        if errors not in ("raise", "return"):
            raise ValueError("errors must be 'raise' or 'return'")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        members = len(self._members)
        answers: list[dict] = []
        whole = {k: [] for k in ("index", "probabilities", "sizes", "box_score")}
        each = {k: [[] for _ in range(members)] for k in ("logits", "features", "stats", "std")}
        if keep_pixels:
            each["pixels"] = [[] for _ in range(members)]
        chunk: list[tuple[int, Image.Image]] = []
        bar = progress(total=len(images) if hasattr(images, "__len__") else None, desc=desc, unit="img",
                       disable=not show_progress or None)

        def flush():
            if not chunk:
                return
            grays = [g for _, g in chunk]
            fp = self._forward(grays, tta)
            done = self._answers(grays, fp)
            for (i, _), answer in zip(chunk, done):
                answers[i] = answer
            if arrays:
                whole["index"].append(np.array([i for i, _ in chunk], dtype=np.int64))
                whole["probabilities"].append(fp.probs)
                whole["sizes"].append(np.array([g.size for g in grays]))
                whole["box_score"].append(np.array([np.nan if a["box_score"] is None else a["box_score"]
                                                    for a in done]))
                for m, ((px, feats), logits) in enumerate(zip(fp.parts, fp.logits)):
                    each["logits"][m].append(logits)
                    each["features"][m].append(pooled_features(feats))
                    each["stats"][m].append(image_statistics(px))
                    each["std"][m].append(px.reshape(len(px), -1).std(axis=1))
                    if keep_pixels:
                        each["pixels"][m].append(px)
            bar.update(len(chunk))
            chunk.clear()

        for image in images:
            answers.append({})
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
    def _forward(self, grays: list[Image.Image], tta: bool) -> "_Pass":
        """One batch of decoded images through every member (see :class:`_Pass`)."""
        pixel_cache: dict[Preprocessing, np.ndarray] = {}
        total = np.zeros((len(grays), len(self.classes)), dtype=np.float64)
        parts, each, raw = [], [], []
        for m in self._members:
            prep = m.preprocessing
            if prep not in pixel_cache:
                pixel_cache[prep] = np.stack([prep.pixels(g) for g in grays])
            pixels = pixel_cache[prep]
            x = np.concatenate([tta_views(p) for p in pixels]) if tta else pixels
            feats = m.body(prep.normalize(torch.from_numpy(x)))
            with torch.inference_mode():
                logits = m.head(feats)
            probs = self._probabilities(logits, m)
            if tta:
                views = len(x) // len(pixels)
                probs = probs.reshape(len(pixels), views, -1).mean(axis=1)
                feats, logits = feats[::views], logits[::views]
            total += probs
            parts.append((pixels, feats))
            each.append(probs)
            raw.append(logits.detach().double().numpy())
        return _Pass(total / len(self._members), parts, each, raw)

    def _probabilities(self, logits: torch.Tensor, member: _Member) -> np.ndarray:
        """Logits -> calibrated probabilities (divided by the checkpoint's temperature)."""
        z = logits.detach().double() / member.temperature
        return torch.softmax(z, dim=1).numpy()

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

    def _answers(self, grays: list[Image.Image], fp: "_Pass") -> list[dict]:
        """Label, probabilities, decision and tumour box of each image; for an ensemble, each
        member's vote (``members``, ``agreement``), and a disagreement makes the answer uncertain."""
        probs, parts, each = fp.probs, fp.parts, fp.each
        heads = self._box_head(parts)
        scores = heads.score if heads is not None else [None] * len(grays)
        decisions = self._decisions(grays, probs, parts, scores)
        out = []
        for n, (p, d, score) in enumerate(zip(probs, decisions, scores)):
            r = self._result(p) | d
            if len(each) > 1:
                self._consensus(r, [e[n] for e in each])
            r["box"] = None  # filled below for answers that show a tumour
            r["box_score"] = score
            out.append(r)
        wanted = [n for n, r in enumerate(out) if r["label"] != _decision.NO_TUMOUR and r["decision"] != "rejected"]
        for n, box in self._tumour_boxes(heads, grays, wanted).items():
            out[n]["box"] = box
        return out

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

    def _box_head(self, parts: list[tuple[np.ndarray, torch.Tensor]]) -> "_Boxes | None":
        """The box head's answer of the first member that has one (None without a box head)."""
        for m, (pixels, feats) in zip(self._members, parts):
            if hasattr(m.model, "box_head"):
                from ..localize import decode_boxes

                with torch.inference_mode():
                    frac, score = decode_boxes(*m.model.box_head(feats.float()))
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
        if hasattr(heads.member.model, "box_refiner"):
            from ..box_refine import refine_boxes

            frac = refine_boxes(heads.member.model.box_refiner, heads.pixels[wanted], frac)
        return {i: box_in_image(f.tolist(), grays[i].size, heads.member.preprocessing)
                for i, f in zip(wanted, frac)}

    def _decisions(self, grays: list[Image.Image], probs: np.ndarray,
                   parts: list[tuple[np.ndarray, torch.Tensor]],
                   box_scores: list[float | None] | None = None) -> list[dict]:
        """"decision", "reason", "prediction_set" and "ood_score" of each image
        (:class:`braintumor.inference.decision.Decider`), from what :meth:`_forward` computed."""
        from .ood import pooled_features

        return self._decider([g.size for g in grays], probs, [px for px, _ in parts],
                             [pooled_features(f) for _, f in parts], box_scores)

    def _target_index(self, target: str | int | None, probs: np.ndarray) -> int:
        if target is None:
            return int(np.argmax(probs))
        if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
            if 0 <= int(target) < len(self.classes):
                return int(target)
        elif isinstance(target, str) and target in self.classes:
            return self.classes.index(target)
        raise ValueError(f"unknown target class {target!r}; choose one of {', '.join(self.classes)}")
