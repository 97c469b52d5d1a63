"""Similar cases and "seen before": an index of labelled scans embedded by a model.

``braintumor index DIR --out FILE`` embeds every scan of a folder of class folders with a model's
penultimate features (the pooled output of its last block, through the same preprocessing and
backend as prediction, L2-normalised) and stores, in one safetensors file: the embeddings
(float16), the labels, the ids (paths under DIR), small JPEG thumbnails, the near-duplicate
descriptors of :mod:`braintumor.dedup` (int8) and the SHA-256 of each file, with the model's
SHA-256 in the header. An index is refused for another model.

:meth:`CaseIndex.search` answers the ``k`` most similar indexed scans by cosine similarity of the
embeddings. Whether an indexed scan is the same picture as the query (exact, re-encoded, resized,
mirrored) is decided by the audit's method, not by the embedding: the file's SHA-256, or the cosine
of the dedup descriptors (of the query or its mirror image) reaching ``dedup.DEFAULT_THRESHOLD``.
Such near copies come first.

Brute force over the shipped index (5,708 scans) takes about 6 ms a query on two cores. An index of an
archive (millions of slices) can be searched through faiss (``pip install faiss-cpu``): with
``backend="faiss"`` the same call uses an exact inner-product index (``IndexFlatIP``), and near
copies are looked up among the embedding's nearest 100 candidates.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from ..errors import CaseIndexError

THUMB = 48  # side of the stored thumbnails, in pixels
FORMAT = "braintumor-case-index"
VERSION = 1


@dataclass
class CaseIndex:
    embeddings: np.ndarray  # (N, D) float32, unit length
    labels: np.ndarray  # (N,) int
    ids: list[str]
    classes: tuple[str, ...]
    model_sha256: str
    descriptors: np.ndarray  # (N, 576) float32, unit length (dedup descriptors)
    sha256: list[str]
    thumbs: list[bytes] = field(default_factory=list)  # JPEG bytes per scan
    backend: str = "numpy"
    _faiss: Any = None

    def __len__(self) -> int:
        return len(self.ids)

    # ---------------------------------------------------------------------------- storage

    def save(self, path: str | Path) -> None:
        from safetensors.numpy import save_file

        offsets = np.cumsum([0] + [len(t) for t in self.thumbs]).astype(np.int64)
        scale = np.abs(self.descriptors).max(axis=1, keepdims=True).clip(1e-8)
        tensors = {
            "embeddings": self.embeddings.astype(np.float16),
            "labels": self.labels.astype(np.int16),
            "descriptors": np.round(self.descriptors / scale * 127).astype(np.int8),
            "descriptor_scale": scale.astype(np.float32).ravel(),
            "thumbs": np.frombuffer(b"".join(self.thumbs), dtype=np.uint8).copy() if self.thumbs
            else np.zeros(0, np.uint8),
            "thumb_offsets": offsets,
        }
        meta = {"format": FORMAT, "version": str(VERSION), "model_sha256": self.model_sha256,
                "classes": json.dumps(list(self.classes)), "ids": json.dumps(self.ids),
                "sha256": json.dumps(self.sha256)}
        save_file(tensors, str(path), metadata=meta)

    @classmethod
    def load(cls, path: str | Path, model_sha256: str | None = None, backend: str = "numpy") -> "CaseIndex":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
                if meta.get("format") != FORMAT:
                    raise CaseIndexError(f"{path} is not a braintumor case index")
                t = {k: f.get_tensor(k) for k in f.keys()}
        except CaseIndexError:
            raise
        except Exception as exc:  # noqa: BLE001 - any unreadable file is one clear error
            raise CaseIndexError(f"{path} cannot be read as a case index ({type(exc).__name__})") from None
        if model_sha256 is not None and meta["model_sha256"] != model_sha256:
            raise CaseIndexError(f"{path} was built with model {meta['model_sha256'][:12]}, not with the model "
                              f"served ({model_sha256[:12]}); build one with: braintumor index DIR --out FILE")
        desc = t["descriptors"].astype(np.float32) * (t["descriptor_scale"][:, None] / 127.0)
        desc /= np.linalg.norm(desc, axis=1, keepdims=True).clip(1e-8)
        emb = t["embeddings"].astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True).clip(1e-8)
        off, blob = t["thumb_offsets"], t["thumbs"].tobytes()
        thumbs = [blob[off[i]:off[i + 1]] for i in range(len(off) - 1)]
        index = cls(emb, t["labels"].astype(np.int64), json.loads(meta["ids"]), tuple(json.loads(meta["classes"])),
                    meta["model_sha256"], desc, json.loads(meta["sha256"]), thumbs, backend)
        if backend == "faiss":
            index._build_faiss()
        elif backend != "numpy":
            raise CaseIndexError(f"unknown search backend {backend!r}; numpy or faiss")
        return index

    def _build_faiss(self) -> None:
        try:
            import faiss
        except ImportError:
            raise CaseIndexError("backend 'faiss' needs faiss: pip install faiss-cpu") from None
        self._faiss = faiss.IndexFlatIP(self.embeddings.shape[1])
        self._faiss.add(np.ascontiguousarray(self.embeddings, dtype=np.float32))

    # ----------------------------------------------------------------------------- search

    def near_copies(self, descriptor: np.ndarray, flipped: np.ndarray, sha256: str | None = None,
                    among: np.ndarray | None = None, threshold: float | None = None) -> np.ndarray:
        """Indices of the indexed scans that are the same picture as the query (the audit's rule)."""
        from ..dedup import DEFAULT_THRESHOLD

        threshold = DEFAULT_THRESHOLD if threshold is None else threshold
        rows = np.arange(len(self)) if among is None else np.asarray(among)
        d = self.descriptors[rows]
        sim = np.maximum(d @ descriptor, d @ flipped)
        hit = sim >= threshold
        if sha256:
            hit |= np.array([self.sha256[i] == sha256 for i in rows], dtype=bool)
        return rows[hit]

    def search(self, embedding: np.ndarray, descriptor: np.ndarray, flipped: np.ndarray, k: int = 5,
               sha256: str | None = None) -> list[dict]:
        """The ``k`` most similar indexed scans, most similar first, near copies before the rest:
        ``[{"id", "label", "similarity", "near_copy"}]``."""
        q = np.asarray(embedding, dtype=np.float32)
        q = q / max(float(np.linalg.norm(q)), 1e-8)
        k = max(1, min(int(k), len(self)))
        if self._faiss is not None:
            sims, idx = self._faiss.search(q[None, :], min(len(self), max(k, 100)))
            cand, sim = idx[0], sims[0]
            copies = set(self.near_copies(descriptor, flipped, sha256, among=cand).tolist())
        else:
            sim_all = self.embeddings @ q
            copies = set(self.near_copies(descriptor, flipped, sha256).tolist())
            top = np.argpartition(-sim_all, k - 1)[:k] if k < len(self) else np.arange(len(self))
            cand = np.array(sorted(set(top.tolist()) | copies), dtype=np.int64)
            sim = sim_all[cand]
        order = sorted(range(len(cand)), key=lambda j: (int(cand[j]) not in copies, -float(sim[j])))
        out = []
        for j in order[:k]:
            i = int(cand[j])
            out.append({"id": self.ids[i], "label": self.classes[int(self.labels[i])],
                        "similarity": round(float(sim[j]), 4), "near_copy": i in copies})
        return out

    def thumbnail(self, item_id: str) -> bytes | None:
        try:
            return self.thumbs[self.ids.index(item_id)]
        except ValueError:
            return None


def thumbnail_jpeg(gray: Image.Image) -> bytes:
    img = gray.convert("L")
    img.thumbnail((THUMB, THUMB), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=70, optimize=True)
    return buf.getvalue()


def query_parts(gray: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """The dedup descriptor of a query and of its mirror image."""
    from ..dedup import descriptor

    return descriptor(gray)


def build_index(predictor: Any, root: str | Path, classes: Sequence[str], batch_size: int = 32,
                show_progress: bool = True) -> CaseIndex:
    """Embed every scan under ``root/<class>/`` with ``predictor`` (its first model)."""
    import hashlib

    from ..data import list_samples, progress
    from ..imaging import load_image

    root = Path(root)
    samples = list_samples(root, tuple(classes), require_all=False)
    embs, descs, shas, thumbs, ids, labels = [], [], [], [], [], []
    bar = progress(total=len(samples), desc="index", disable=None if show_progress else True)
    for start in range(0, len(samples), batch_size):
        chunk = samples[start:start + batch_size]
        grays = []
        for s in chunk:
            data = Path(s.path).read_bytes()
            gray = load_image(data, Path(s.path).name)
            grays.append(gray)
            shas.append(hashlib.sha256(data).hexdigest())
            descs.append(query_parts(gray)[0])
            thumbs.append(thumbnail_jpeg(gray))
            ids.append(Path(s.path).relative_to(root).as_posix())
            labels.append(s.label)
        embs.append(predictor.embed(grays))
        bar.update(len(chunk))
    bar.close()
    emb = np.concatenate(embs).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True).clip(1e-8)
    return CaseIndex(emb, np.array(labels), ids, tuple(classes), str(predictor.sha256),
                     np.stack(descs).astype(np.float32), shas, thumbs)
