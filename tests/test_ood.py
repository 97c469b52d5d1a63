"""The out-of-distribution gate: what is not a brain MRI slice is refused, with a reason in words."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from braintumor.training import gate_fit, gate_negatives as negatives
from braintumor.imaging import COLOUR_KEY, load_image
from braintumor.inference import ood
from braintumor.inference.decision import DecisionPolicy

from conftest import synthetic_scan


def document(size: tuple[int, int] = (600, 800)) -> Image.Image:
    img = Image.new("RGB", size, (250, 250, 248))
    d = ImageDraw.Draw(img)
    for i in range(40):
        d.text((40, 40 + 18 * i), "Radiology report: findings and impression, page 1 of 2 " * 2, fill=(20, 20, 20))
    return img


@pytest.fixture(scope="module")
def shipped_predictor():
    from braintumor.inference.predictor import Predictor

    return Predictor.load()


@pytest.fixture(scope="module")
def shipped_gate(shipped_predictor):
    gate = ood.OodGate.from_meta(shipped_predictor.checkpoints[0].meta.get("ood"))
    if gate.legacy:
        pytest.skip("the shipped model's gate was fitted by an earlier version (braintumor fit-gate)")
    return gate


# ----------------------------------------------------------------------------------- the shipped gate


def test_shipped_gate_accepts_the_sample_scans(shipped_predictor, sample_files):
    results = shipped_predictor.predict_batch([p for p, _ in sample_files])
    assert [r["decision"] for r in results].count("rejected") == 0
    assert all(r["ood_score"] <= 1.0 for r in results)


@pytest.mark.parametrize("kind, expected", [
    ("black", {"blank"}), ("grey", {"blank"}), ("white", {"blank"}), ("tiny", {"too small"}),
    ("noise", {"pattern", "atypical", "not brain MRI"}), ("photo", {"photograph", "colour", "not brain MRI"}),
    ("document", {"document", "graphic", "not brain MRI"}),
    ("head-ct", {"ct"}),
])
def test_shipped_gate_rejects_what_is_not_a_brain_mri_and_says_what_it_looks_like(
        shipped_predictor, shipped_gate, sample_files, kind, expected):
    rng = np.random.default_rng(1)
    images = {
        "black": Image.new("L", (256, 256), 0),
        "grey": Image.new("L", (256, 256), 128),
        "white": Image.new("RGB", (300, 200), (255, 255, 255)),
        "noise": Image.fromarray(rng.integers(0, 256, (256, 256), dtype=np.uint8)),
        "photo": negatives.landscape(rng),
        "document": document(),
        "tiny": Image.open(sample_files[0][0]).resize((40, 40)),
        "head-ct": negatives.head_ct(np.random.default_rng(7)),
    }
    r = shipped_predictor.predict(images[kind])
    assert r["decision"] == "rejected" and r["headline"] == "Not analysed", (kind, r["ood_score"], r["reason"])
    assert r["prediction_set"] == [] and r["rejection"] in expected, (kind, r["rejection"])
    words = {"blank": ood.BLANK, "too small": "40 x 40 pixels", "colour": ood.COLOUR, "atypical": ood.ATYPICAL,
             "not brain MRI": ood.NOT_MRI}
    assert words.get(r["rejection"], ood.REASONS.get(r["rejection"])) in r["reason"]
    assert set(r) >= {"label", "confidence", "probabilities"}  # the raw answer is still there


def test_the_gate_can_be_switched_off(sample_files):
    from braintumor.inference.predictor import Predictor

    p = Predictor.load(policy=DecisionPolicy(ood=False))
    r = p.predict(Image.new("L", (256, 256), 0))
    assert r["decision"] != "rejected" and r["ood_score"] is None


def test_an_unfitted_checkpoint_still_refuses_blank_and_tiny_images(random_checkpoint):
    from braintumor.inference.predictor import Predictor

    p = Predictor.load(random_checkpoint)
    assert p.predict(Image.new("L", (128, 128), 7))["reason"] == ood.BLANK
    small = np.random.default_rng(0).integers(0, 256, (40, 50), dtype=np.uint8)
    assert p.predict(small)["reason"] == ood.TOO_SMALL.format(w=50, h=40, m=ood.MIN_SIDE)
    r = p.predict(synthetic_scan(0, 128))
    assert r["decision"] == "classified" and r["ood_score"] is None  # no statistics to compare with


# ----------------------------------------------------------------------------------- the pieces


def test_image_statistics_are_finite_and_describe_the_pixels():
    rng = np.random.default_rng(0)
    px = np.stack([np.zeros((64, 64), np.uint8), rng.integers(0, 256, (64, 64), dtype=np.uint8)])
    s = ood.image_statistics(px)
    assert s.shape == (2, 43) and np.isfinite(s).all()
    assert s[0, 0] == 1.0 and s[0, 1:16].sum() == 0  # black: all pixels in the first bin
    assert s[0, 16:40].max() == 0  # no edges, no Laplacian energy
    assert s[0, 40:].tolist() == [0.0, 1.0, 0.0]  # a dark, flat border
    assert s[1, 16] > 0.9  # noise: nearly every pixel is an edge


def test_shape_statistics_tell_a_head_on_black_from_a_page_and_a_ct_ring():
    head = ood.gate_pixels(load_image(synthetic_scan(0, 256)))
    page = ood.gate_pixels(load_image(document((600, 600))))
    ct = ood.gate_pixels(load_image(negatives.head_ct(np.random.default_rng(0))))
    s = ood.shape_statistics(np.stack([head, page, ct]))
    assert s.shape == (3, 16) and np.isfinite(s).all()
    share, frame_bright, sym, rim = s[:, 0], s[:, 7], s[:, 8], s[:, 10]
    assert 0.3 < share[0] < 0.7 and share[1] > 0.9  # a disc on black; a page that fills the frame
    assert frame_bright[0] == 0 and frame_bright[1] == 1  # black border; white border
    assert sym[0] > 0.8  # a disc is left-right symmetric
    assert rim[2] > rim[0] + 0.2  # the CT's bright skull around a flat grey brain


def test_colour_is_measured_when_an_image_is_read_and_reaches_the_gate_inputs():
    grey = load_image(Image.new("RGB", (100, 100), (90, 90, 90)))
    red = load_image(Image.new("RGB", (100, 100), (200, 30, 30)))
    half = np.zeros((100, 100, 3), np.uint8)
    half[:50] = (0, 0, 255)
    assert grey.info[COLOUR_KEY] == 0.0 and red.info[COLOUR_KEY] == 1.0
    assert load_image(half).info[COLOUR_KEY] == pytest.approx(0.5, abs=0.02)
    x = ood.gate_inputs([grey, red])
    assert x.shape == (2, 61) and ood.colours_of(x).tolist() == [0.0, 1.0]


def test_gaussian_distance_is_the_squared_mahalanobis_distance():
    rng = np.random.default_rng(0)
    cov = np.array([[4.0, 1.2, 0.0], [1.2, 1.0, 0.3], [0.0, 0.3, 0.5]])
    x = rng.multivariate_normal([1.0, -2.0, 0.5], cov, size=20000)
    g = ood.Gaussian.fit(x, shrink=0.0)
    probe = rng.normal(size=(5, 3))
    r = probe - x.mean(0)
    expected = np.einsum("nd,de,ne->n", r, np.linalg.inv(np.cov(x.T, bias=True)), r)
    assert np.allclose(g.distance(probe), expected, rtol=1e-4)
    assert g.distance(x).mean() == pytest.approx(3.0, rel=0.05)  # chi-square with 3 degrees


def test_conformal_quantile_bounds_the_rejected_share():
    scores = np.arange(1, 201, dtype=float)
    t = ood.conformal_quantile(scores, 0.05)
    assert t == 191.0  # ceil(0.95 * 201) = 191st smallest
    assert (scores > t).mean() <= 0.05
    m = ood.conformal_quantile(scores, 0.05, midpoint=True)
    assert m == 191.5 and (scores > m).sum() == (scores > t).sum()  # same scores rejected, with room


def _data(rng, n_train=600, n_val=400, shift_group=None):
    """Synthetic collected slices: 2 sources x 2 classes, features and gate inputs from Gaussians."""
    n = n_train + n_val
    inputs = rng.normal(size=(n, 61))
    inputs[:, -2] = 0.0  # grey
    features = rng.normal(size=(n, 8))
    group = np.array([f"{s}/{c}" for s, c in zip(rng.choice(["main", "other"], n), rng.choice(["a", "b"], n))])
    if shift_group:
        features[group == shift_group] *= 1.6  # one group lies further out than the others
    return gate_fit.GateData(np.array(["train"] * n_train + ["val"] * n_val), group, np.array(["mri"] * n),
                             features, inputs, np.full((n, 2), 256), np.full(n, 40.0))


def _negatives(rng, n=300):
    kinds = list(negatives.KINDS)
    y = [kinds[i % len(kinds)] for i in range(n)]
    x = rng.normal(size=(n, 61)) + 8.0 * np.eye(61)[[kinds.index(k) for k in y]]  # each kind off in its own direction
    x[:, -2] = 0.0
    return x, y


def test_a_fitted_gate_bounds_every_groups_rejections_and_survives_the_checkpoint_metadata():
    rng = np.random.default_rng(1)
    data = _data(rng, shift_group="other/b")
    x_neg, kinds = _negatives(rng)
    gate = gate_fit.fit_gate(data, (x_neg, kinds), rate=0.02)
    val = data.split == "val"
    raw = gate.raw_scores(None, data.features[val], data.inputs[val])
    for g in np.unique(data.group):
        assert (raw[data.group[val] == g] > gate.threshold).mean() <= 0.02
    assert set(gate.info["val_rejected_per_group"]) == {"main/a", "main/b", "other/a", "other/b"}
    back = ood.OodGate.from_meta(json.loads(json.dumps(gate.to_meta())))
    assert back.threshold == gate.threshold and back.fitted and not back.legacy
    probe_x, probe_f = np.concatenate([data.inputs[val][:3], x_neg[:7]]), rng.normal(size=(10, 8))
    assert np.allclose(back.scores(None, probe_f, probe_x), gate.scores(None, probe_f, probe_x))
    verdicts = back.check([(32, 32)] + [(256, 256)] * 9, np.full((10, 4, 4), 100) + np.eye(4) * 50, probe_f, probe_x)
    assert verdicts[0].rejection == "too small" and "32 x 32" in verdicts[0].reason
    said = [v.rejection for v in verdicts[3:]]
    assert sum(k in negatives.KINDS for k in said) >= 5  # the negatives are named as what they look like
    assert all(v.reason == ood.REASONS.get(v.rejection, ood.NOT_MRI) for v in verdicts[3:])
    coloured = probe_x[3:4].copy()
    coloured[:, -2] = 0.6  # 36% of the picture in colour
    assert back.check([(256, 256)], np.full((1, 4, 4), 100) + np.eye(4) * 50, probe_f[:1], coloured)[0].reason


def test_a_gate_fitted_by_an_earlier_version_still_loads_and_checks():
    rng = np.random.default_rng(0)
    legacy = ood.OodGate(ood.Gaussian.fit(rng.normal(size=(100, 8)), 1e-4), ood.Gaussian.fit(rng.normal(size=(100, 43)), 1e-2),
                         legacy=True, threshold=1.5)
    meta = json.loads(json.dumps(legacy.to_meta()))
    assert "version" not in meta
    back = ood.OodGate.from_meta(meta)
    assert back.legacy and not back.needs_inputs
    px = rng.integers(0, 256, (2, 64, 64), dtype=np.uint8)
    verdicts = back.check([(64, 64), (64, 64)], px, rng.normal(size=(2, 8)) * np.array([[1], [50]]))
    assert verdicts[1].rejection == "atypical" and verdicts[1].reason == ood.ATYPICAL


def test_every_reason_is_plain_short_sentences():
    for reason in [*ood.REASONS.values(), ood.BLANK, ood.COLOUR, ood.ATYPICAL, ood.NOT_MRI, ood.TOO_SMALL]:
        assert reason[0].isupper() and reason.endswith(".") and "_" not in reason and "notumor" not in reason
        assert all(len(s.split()) <= 20 for s in reason.split(". "))


def test_fit_gate_command_fits_and_stores_a_gate(random_checkpoint, sample_dir, tmp_path, capsys):
    """The whole command on the twelve sample scans (a split of 8 + 4) with a random model."""
    import shutil

    from braintumor.cli import main

    ck = tmp_path / "model.safetensors"
    shutil.copy(random_checkpoint, ck)
    rels = sorted(p.relative_to(sample_dir).as_posix() for p in sample_dir.rglob("*.jpg"))
    val = rels[::3]
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": [r for r in rels if r not in val], "val": val}))
    not_mri = tmp_path / "not-mri.tsv"
    not_mri.write_text(f"file\tkind\n{rels[1]}\tct\n")
    assert main(["fit-gate", "--model", str(ck), "--data", str(sample_dir), "--split", str(split),
                 "--not-mri", str(not_mri)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ood"]["version"] == ood.VERSION and out["ood"]["info"]["val_groups_n"]
    from braintumor.inference.predictor import Predictor

    p = Predictor.load(ck)
    gate = ood.OodGate.from_meta(p.checkpoints[0].meta["ood"])
    assert gate.fitted and gate.kinds.kinds[0] == ood.MRI and set(gate.kinds.kinds[1:]) == set(negatives.KINDS)
    r = p.predict(document())
    assert r["decision"] == "rejected" and r["rejection"] in ood.REASONS
    assert main(["fit-gate", "--model", str(ck), "--data", str(tmp_path / "nowhere"), "--split", str(split)]) == 2


def test_a_blank_page_padded_to_a_square_is_still_blank():
    """Padding a non-square white page with black bars gives the network's pixels a large spread;
    the blank check looks past the bars, and still sees a slice's own dark background."""
    from braintumor.inference.preprocess import prepare

    gate = ood.OodGate()
    white = prepare(Image.new("L", (300, 200), 255), 224, "pad")
    assert white.std() > 50 and ood.content_std(white) == 0.0
    slice_ = np.zeros((224, 224), np.uint8)  # a head on a black background that is part of the picture
    slice_[60:160, 50:170] = np.random.default_rng(0).integers(60, 120, (100, 120))
    slice_[100:120, 100:120] = 0  # a dark ventricle inside the head
    assert ood.content_std(slice_) > 2.0 and ood.content_std(slice_[50:170, 40:180]) > 2.0
    verdicts = gate.check([(300, 200), (224, 224)], np.stack([white, slice_]), np.zeros((2, 4)))
    assert [v.rejection for v in verdicts] == ["blank", None]


# ----------------------------------------------------------------------------------- real MRI, as sent


@pytest.fixture(scope="module")
def tiny_mri_gates(sample_files):
    """Two gates fitted on the same tiny setup: the real gate inputs of 8 sample scans (each as it
    is, mirrored and turned a little) against a small draw of the generated negatives, the other 4
    scans the validation split; one gate with changed copies of the training scans, one without."""
    from PIL import ImageOps

    files = [p for p, _ in sample_files]
    val, train = files[1::3], [f for i, f in enumerate(files) if i % 3 != 1]

    def views(fs):
        return [load_image(img) for f in fs for g in [load_image(f)]
                for img in (g, ImageOps.mirror(g), g.rotate(8, resample=Image.BILINEAR),
                            g.rotate(-8, resample=Image.BILINEAR))]

    inputs = ood.gate_inputs(views(train) + views(val))
    n, n_train = len(inputs), 4 * len(train)
    rng = np.random.default_rng(0)
    data = gate_fit.GateData(np.array(["train"] * n_train + ["val"] * (n - n_train)), np.array(["main/mri"] * n),
                             np.array(["mri"] * n), rng.normal(size=(n, 8)), inputs, np.full((n, 2), 256),
                             np.full(n, 40.0))
    r = np.random.default_rng(0)
    drawn = (negatives.photographs(r, 24) + negatives.documents(r, 10) + negatives.graphics(r, 8)
             + negatives.radiology(r, 4) + negatives.patterns(r))
    neg = ood.gate_inputs([load_image(img) for _, _, img in drawn]), [kind for kind, _, _ in drawn]
    changed = gate_fit.mri_variant_inputs(train * 8)
    assert changed.shape == (64, inputs.shape[1])
    return val, gate_fit.fit_gate(data, neg, variants=changed), gate_fit.fit_gate(data, neg)


def _as_sent(files, names):
    """Changed copies of ``files`` (seeds no fitting used), the way a served image is read."""
    return [load_image(negatives.mri_variant(np.random.default_rng([99, i]), load_image(f), name))
            for i, f in enumerate(files) for name in names]


def _kinds_said(gate, grays):
    """What the gate's size, blank, colour and classifier checks say of each image (None: brain
    MRI). The atypical check is left aside: a Gaussian of 32 slices in 61 dimensions says little
    (``benchmarks/gate_mri.py`` measures the whole gate on the real splits)."""
    x = ood.gate_inputs(grays)
    verdicts = gate.check([g.size for g in grays], np.stack([ood.gate_pixels(g) for g in grays]),
                          np.zeros((len(grays), 8)), x)
    return [None if v.rejection == "atypical" else v.rejection for v in verdicts]


def test_framed_annotated_and_turned_mri_is_still_brain_mri_to_a_gate_fitted_with_changed_copies(tiny_mri_gates):
    val, with_changes, without = tiny_mri_gates
    names = ("white frame", "grey frame", "annotated", "framed and annotated", "rotated 90")
    sent = _as_sent(val, names)
    assert _kinds_said(with_changes, sent) == [None] * len(sent)
    assert sum(k is not None for k in _kinds_said(without, sent)) >= len(sent) // 4  # what the changes fix
    assert _kinds_said(with_changes, [load_image(f) for f in val]) == [None] * len(val)


def test_a_gate_fitted_with_changed_mri_copies_still_refuses_documents_and_photographs(tiny_mri_gates):
    _, gate, _ = tiny_mri_gates
    rng = np.random.default_rng(11)
    others = [document(), negatives.document(rng, "table"), negatives.landscape(rng), negatives.portrait(rng)]
    said = _kinds_said(gate, [load_image(o) for o in others])
    assert said[:2] == ["document", "document"] and None not in said[2:], said


def test_every_mri_change_keeps_a_readable_grey_picture(sample_files):
    g = load_image(sample_files[0][0])
    for i, name in enumerate(negatives.MRI_VARIANTS):
        out = negatives.mri_variant(np.random.default_rng(i), g, name)
        a = np.asarray(out.convert("L"))
        assert min(a.shape) >= 48 and a.std() > 10, name
    framed = np.asarray(negatives.mri_variant(np.random.default_rng(0), Image.new("L", (100, 100)), "white frame"))
    assert framed.max() >= 225  # a white frame on a black picture
    with pytest.raises(ValueError):
        negatives.mri_variant(np.random.default_rng(0), g, "upside down")
