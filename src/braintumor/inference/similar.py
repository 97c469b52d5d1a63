"""Similar cases and "seen before": an index of labelled scans embedded by a model.

``braintumor index DIR [--source DIR]... --split split.json --out FILE`` embeds every scan of a
folder of class folders (and of other source folders) with a model's penultimate features (the
pooled output of its last block, through the same preprocessing and backend as prediction,
L2-normalised) and stores, in one safetensors file: the embeddings (float16), the labels, the ids
(paths under DIR; ``SOURCE/...`` for other sources), whether the model **trained** on each scan
(from the split), JPEG thumbnails (:data:`THUMB` pixels), the near-duplicate descriptors of
:mod:`braintumor.data.dedup` (int8), the SHA-256 of each file, and each scan's similarity to its own
nearest indexed neighbour, with the digest of the model's weights and its preprocessing in the
header. An index is refused for another model (its recalibration, which keeps the weights, keeps
the index valid).

:meth:`CaseIndex.search` answers the ``k`` most similar indexed scans by cosine similarity of the
embeddings, in that order, each with its ``closeness``: the share of indexed scans (in %) whose own
nearest neighbour is less similar than this one is to the query, so that 50 is an ordinary
neighbour and 99 closer than almost any two scans in the index. Whether an indexed scan is the same
picture as the query is decided by the audit's method, not by the embedding (the file's SHA-256,
or the cosine of the dedup descriptors of the query or its mirror image), at two levels
(:func:`match_level`):

- ``"same picture"`` (cosine >= :data:`SAME_PICTURE`, or the same bytes): the scan itself, re-encoded,
  resized or mirrored;
- ``"neighbouring slice"`` (>= :data:`NEIGHBOUR`): nearly the same view, as the next slice of the
  same scan is.

Only matches with scans the model trained on make the answer's notice (:func:`seen_before`). Brute
force over the shipped index takes a few ms a query on two cores; ``backend="faiss"`` (``pip
install faiss-cpu``) serves large archives, near copies then looked up among the nearest 100.
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

THUMB = 128  # side of the stored thumbnails, in pixels (the page shows them larger on a click)
FORMAT = "braintumor-case-index"
VERSION = 2
SAME_PICTURE = 0.97  # dedup-descriptor cosine from which an indexed scan is the query's own picture
NEIGHBOUR = 0.93  # ... from which it is nearly the same view (the audit's near-duplicate threshold)
SAME, NEXT = "same picture", "neighbouring slice"
NOTICES = {
    SAME: "The model was trained on this very picture (or a re-encoded, resized or mirrored copy of it). "
          "Its answer shows what it remembers, not how it reads a new scan.",
    NEXT: "The model was trained on a scan with nearly the same view, such as the neighbouring slice of "
          "the same patient. Its answer may lean on memory.",
}


def match_level(cosine: float, same_bytes: bool = False) -> str | None:
    """How an indexed scan matches the query, from their dedup-descriptor cosine."""
    if same_bytes or cosine >= SAME_PICTURE:
        return SAME
    return NEXT if cosine >= NEIGHBOUR else None


def seen_before(found: Sequence[dict]) -> tuple[str | None, str | None]:
    """(level, notice) of an answer from its similar cases: the strongest match with a scan the
    model trained on, or (None, None)."""
    levels = {s.get("match") for s in found if s.get("trained")}
    for level in (SAME, NEXT):
        if level in levels:
            return level, NOTICES[level]
    return None, None


def case_words(case: dict) -> str:
    """One similar case for a person: its class, how close it is and how it matches the query."""
    from ..config import CLASS_NAMES

    name = CLASS_NAMES.get(case["label"], case["label"])
    if case.get("match") == SAME:
        words = f"{name}, the same picture"
    else:
        c = case["closeness"]
        near = closeness_words(c)
        words = f"{name}, {near} (closeness {c} of 100)" + (f", a {case['match']}" if case.get("match") else "")
    return words + ((", trained on" if case.get("trained") else ", not trained on") if case.get("match") else "")


COLLECTIONS = {"tcga-lgg": "TCGA-LGG", "br35h": "Br35H", "figshare": "figshare"}
MAIN_COLLECTION = "Brain Tumor MRI Dataset"  # ids "CLASS/FILE": the index's main folder


def collection_of(case_id: str) -> str:
    """The collection an indexed scan comes from, as a person names it, from its id (``CLASS/FILE``
    for the main folder, ``SOURCE/...`` for another source): never the file's path."""
    first = str(case_id).split("/", 1)[0]
    from ..config import CLASSES

    if first in CLASSES or "/" not in str(case_id):
        return MAIN_COLLECTION
    return COLLECTIONS.get(first.lower(), first)


CLOSENESS_WORDS = ("very close", "close", "loosely similar")
CLOSENESS_SCALE = ("Closeness compares the pair with the closest pairs within the index: very close means closer "
                   "than 90 in 100 indexed scans are to their own most similar scan; close, closer than half of "
                   "them; loosely similar, less close than that.")


def closeness_words(closeness: int) -> str:
    """A similar case's closeness (0 to 100) in words: very close, close or loosely similar."""
    return CLOSENESS_WORDS[0] if closeness >= 90 else CLOSENESS_WORDS[1] if closeness >= 50 else CLOSENESS_WORDS[2]


def case_line(case: dict) -> str:
    """One similar case for a clinician: its collection and class, and how close it is or how it
    matches ("TCGA-LGG, Glioma: very close"); no file path, no number."""
    from ..config import CLASS_NAMES

    head = f"{collection_of(case['id'])}, {CLASS_NAMES.get(case['label'], case['label'])}"
    if case.get("match") == SAME:
        words = "the same picture"
    else:
        words = closeness_words(int(case["closeness"])) + (f", a {case['match']}" if case.get("match") else "")
    if case.get("match"):
        words += ", which the model was trained on" if case.get("trained") else ", not used in training"
    return f"{head}: {words}"


@dataclass
class CaseIndex:
    embeddings: np.ndarray  # (N, D) float32, unit length
    labels: np.ndarray  # (N,) int
    ids: list[str]
    classes: tuple[str, ...]
    model_weights: str  # digest of the model's weights (braintumor.inference.model_file.weights_digest)
    descriptors: np.ndarray  # (N, 576) float32, unit length (dedup descriptors)
    sha256: list[str]
    trained: np.ndarray  # (N,) bool: the model trained on this scan
    thumbs: list[bytes] = field(default_factory=list)  # JPEG bytes per scan
    nn_similarity: np.ndarray | None = None  # (N,) sorted: each scan's similarity to its nearest other picture
    preprocessing: dict = field(default_factory=dict)
    backend: str = "numpy"
    _faiss: Any = None

    def __len__(self) -> int:
        return len(self.ids)

    # ---------------------------------------------------------------------------- storage

    def save(self, path: str | Path) -> None:
        from safetensors.numpy import save_file

        offsets = np.cumsum([0] + [len(t) for t in self.thumbs]).astype(np.int64)
        scale = np.abs(self.descriptors).max(axis=1, keepdims=True).clip(1e-8)
        nn = self.nn_similarity if self.nn_similarity is not None else nearest_other(self)
        tensors = {
            "embeddings": self.embeddings.astype(np.float16),
            "labels": self.labels.astype(np.int16),
            "descriptors": np.round(self.descriptors / scale * 127).astype(np.int8),
            "descriptor_scale": scale.astype(np.float32).ravel(),
            "trained": np.asarray(self.trained, dtype=np.uint8),
            "nn_similarity": np.sort(np.asarray(nn, dtype=np.float32)),
            "thumbs": np.frombuffer(b"".join(self.thumbs), dtype=np.uint8).copy() if self.thumbs
            else np.zeros(0, np.uint8),
            "thumb_offsets": offsets,
        }
        meta = {"format": FORMAT, "version": str(VERSION), "model_weights": self.model_weights,
                "preprocessing": json.dumps(self.preprocessing, sort_keys=True),
                "classes": json.dumps(list(self.classes)), "ids": json.dumps(self.ids),
                "sha256": json.dumps(self.sha256)}
        save_file(tensors, str(path), metadata=meta)

    @classmethod
    def load(cls, path: str | Path, model_weights: str | None = None, preprocessing: dict | None = None,
             backend: str = "numpy") -> "CaseIndex":
        """The index at ``path``; refused when it was built with other weights (``model_weights``) or
        another preprocessing than the model that will search it."""
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
        rebuild = "build one with: braintumor index DIR --split FILE --out FILE"
        if meta.get("version") != str(VERSION):
            raise CaseIndexError(f"{path} was built by an earlier version of this tool; {rebuild}")
        prep = json.loads(meta.get("preprocessing") or "{}")
        if (model_weights is not None and meta["model_weights"] != model_weights) or \
                (preprocessing is not None and prep and prep != json.loads(json.dumps(preprocessing))):
            raise CaseIndexError(f"{path} was built with model weights {meta['model_weights'][:12]}, not with the "
                                 f"model served ({(model_weights or '?')[:12]}); {rebuild}")
        desc = t["descriptors"].astype(np.float32) * (t["descriptor_scale"][:, None] / 127.0)
        desc /= np.linalg.norm(desc, axis=1, keepdims=True).clip(1e-8)
        emb = t["embeddings"].astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True).clip(1e-8)
        off, blob = t["thumb_offsets"], t["thumbs"].tobytes()
        thumbs = [blob[off[i]:off[i + 1]] for i in range(len(off) - 1)]
        index = cls(emb, t["labels"].astype(np.int64), json.loads(meta["ids"]), tuple(json.loads(meta["classes"])),
                    meta["model_weights"], desc, json.loads(meta["sha256"]), t["trained"].astype(bool), thumbs,
                    t["nn_similarity"].astype(np.float64), prep, backend)
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

    def matches(self, descriptor: np.ndarray, flipped: np.ndarray, sha256: str | None = None,
                among: np.ndarray | None = None) -> dict[int, str]:
        """{index: level} of the indexed scans that match the query (:func:`match_level`)."""
        rows = np.arange(len(self)) if among is None else np.asarray(among)
        d = self.descriptors[rows]
        sim = np.maximum(d @ descriptor, d @ flipped)
        out = {}
        for i, c in zip(rows.tolist(), sim.tolist()):
            level = match_level(c, bool(sha256) and self.sha256[i] == sha256)
            if level:
                out[i] = level
        return out

    def closeness(self, similarity: float) -> int:
        """The share (in %) of indexed scans whose nearest other picture is less similar to them than
        ``similarity``."""
        nn = self.nn_similarity
        if nn is None or not len(nn):
            return 0
        return int(round(100 * np.searchsorted(nn, similarity, side="right") / len(nn)))

    def search(self, embedding: np.ndarray, descriptor: np.ndarray, flipped: np.ndarray, k: int = 5,
               sha256: str | None = None) -> list[dict]:
        """The ``k`` most similar indexed scans, most similar first: ``[{"id", "label", "similarity",
        "closeness", "trained", "match", "near_copy"}]``; ``match`` is None, "same picture" or
        "neighbouring slice"; ``near_copy`` is true for the same picture of a scan the model trained
        on. A same-picture match is always in the list (in place of the least similar)."""
        q = np.asarray(embedding, dtype=np.float32)
        q = q / max(float(np.linalg.norm(q)), 1e-8)
        k = max(1, min(int(k), len(self)))
        if self._faiss is not None:
            sims, idx = self._faiss.search(q[None, :], min(len(self), max(k, 100)))
            cand, sim = idx[0], sims[0]
            matched = self.matches(descriptor, flipped, sha256, among=cand)
        else:
            sim_all = self.embeddings @ q
            matched = self.matches(descriptor, flipped, sha256)
            top = np.argpartition(-sim_all, k - 1)[:k] if k < len(self) else np.arange(len(self))
            cand = np.array(sorted(set(top.tolist()) | set(matched)), dtype=np.int64)
            sim = sim_all[cand]
        order = sorted(range(len(cand)), key=lambda j: -float(sim[j]))
        same = [j for j in order if matched.get(int(cand[j])) == SAME]
        keep = order[:k]
        for j in same:  # the query's own picture stays, in place of the least similar
            if j not in keep:
                keep = keep[:-1] + [j]
        keep.sort(key=lambda j: -float(sim[j]))
        out = []
        for j in keep:
            i = int(cand[j])
            level = matched.get(i)
            out.append({"id": self.ids[i], "label": self.classes[int(self.labels[i])],
                        "similarity": round(float(sim[j]), 4), "closeness": self.closeness(float(sim[j])),
                        "trained": bool(self.trained[i]), "match": level,
                        "near_copy": level == SAME and bool(self.trained[i])})
        return out

    def thumbnail(self, item_id: str) -> bytes | None:
        try:
            return self.thumbs[self.ids.index(item_id)]
        except ValueError:
            return None


def nearest_other(index: CaseIndex, block: int = 1024) -> np.ndarray:
    """Each indexed scan's embedding similarity to its most similar indexed scan that is another
    picture (not itself, not a same-picture copy)."""
    emb, desc = index.embeddings, index.descriptors
    out = np.zeros(len(emb))
    for start in range(0, len(emb), block):
        e = emb[start:start + block] @ emb.T
        same = desc[start:start + block] @ desc.T >= SAME_PICTURE
        e[same] = -np.inf  # the scan itself and its copies
        out[start:start + block] = e.max(axis=1)
    return np.where(np.isfinite(out), out, 0.0)


def thumbnail_jpeg(gray: Image.Image) -> bytes:
    img = gray.convert("L")
    img.thumbnail((THUMB, THUMB), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=70, optimize=True)
    return buf.getvalue()


def query_parts(gray: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """The dedup descriptor of a query and of its mirror image."""
    from ..data.dedup import descriptor

    return descriptor(gray)


@dataclass(frozen=True)
class Folder:
    """A labelled folder to index: its ``root``, the prefix of its ids (``""`` for the main folder)
    and the files (relative to the root) the model trained on."""

    root: Path
    prefix: str = ""
    trained: frozenset = frozenset()


def build_index(predictor: Any, folders: Sequence[Folder] | str | Path, classes: Sequence[str],
                batch_size: int = 32, show_progress: bool = True) -> CaseIndex:
    """Embed every scan under each folder's ``<class>/`` sub-folders with ``predictor`` (its first
    model); a plain path is one folder the model did not train on."""
    import hashlib

    from ..data.folders import list_samples
    from ..progress import progress
    from ..imaging import load_image

    if isinstance(folders, (str, Path)):
        folders = [Folder(Path(folders))]
    samples = []
    for folder in folders:
        if folder.prefix:  # another source (braintumor.data.sources): its class folders, tumours of unknown type left out
            from ..data.sources import list_source

            samples += [(folder, im.rel, im) for im in list_source(folder.root)
                        if im.label >= 0 and im.rel.split("/")[0] in classes]
            continue
        for s in list_samples(Path(folder.root), tuple(classes), require_all=False):
            rel = Path(s.path).relative_to(folder.root).as_posix()
            samples.append((folder, rel, s))
    embs, descs, shas, thumbs, ids, labels, trained = [], [], [], [], [], [], []
    bar = progress(total=len(samples), desc="index", disable=None if show_progress else True)
    for start in range(0, len(samples), batch_size):
        chunk = samples[start:start + batch_size]
        grays = []
        for folder, rel, s in chunk:
            data = Path(s.path).read_bytes()
            gray = load_image(data, Path(s.path).name)
            grays.append(gray)
            shas.append(hashlib.sha256(data).hexdigest())
            descs.append(query_parts(gray)[0])
            thumbs.append(thumbnail_jpeg(gray))
            ids.append(f"{folder.prefix}/{rel}" if folder.prefix else rel)
            labels.append(s.label)
            trained.append(rel in folder.trained)
        embs.append(predictor.embed(grays))
        bar.update(len(chunk))
    bar.close()
    emb = np.concatenate(embs).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True).clip(1e-8)
    index = CaseIndex(emb, np.array(labels), ids, tuple(classes), predictor.weights_digest,
                      np.stack(descs).astype(np.float32), shas, np.array(trained, bool), thumbs,
                      preprocessing=predictor.preprocessing.to_dict())
    index.nn_similarity = np.sort(nearest_other(index))
    return index
