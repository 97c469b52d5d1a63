"""The out-of-distribution gate: the shipped model rejects what is not a brain MRI slice."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from braintumor.inference import ood
from braintumor.inference.decision import DecisionPolicy

from conftest import synthetic_scan


def landscape(seed: int = 0, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A colour 'photograph': sky, sun, textured hills, a house, a tree, camera noise."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy = np.linspace(0, 1, h)[:, None, None]
    sky = (np.array([70, 130, 230]) * (1 - yy) + np.array([200, 225, 255]) * yy) * np.ones((1, w, 1))
    img = Image.fromarray(sky.astype(np.uint8))
    d = ImageDraw.Draw(img)
    d.ellipse((w * 0.75, h * 0.08, w * 0.88, h * 0.25), fill=(255, 230, 90))
    d.polygon([(0, h * 0.6), (w * 0.3, h * 0.45), (w * 0.6, h * 0.58), (w, h * 0.5), (w, h), (0, h)],
              fill=(60, 150, 60))
    d.rectangle((w * 0.2, h * 0.5, w * 0.35, h * 0.7), fill=(180, 60, 50))
    d.polygon([(w * 0.18, h * 0.5), (w * 0.275, h * 0.4), (w * 0.37, h * 0.5)], fill=(90, 40, 30))
    d.rectangle((w * 0.6, h * 0.45, w * 0.63, h * 0.65), fill=(100, 70, 40))
    d.ellipse((w * 0.54, h * 0.3, w * 0.69, h * 0.5), fill=(30, 110, 40))
    a = np.asarray(img.filter(ImageFilter.GaussianBlur(1.5))).astype(np.float64)
    a[int(h * 0.6):] += rng.normal(0, 18, (h - int(h * 0.6), w, 1))  # grass texture
    a += rng.normal(0, 4, a.shape)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def document(size: tuple[int, int] = (600, 800)) -> Image.Image:
    img = Image.new("RGB", size, (250, 250, 248))
    d = ImageDraw.Draw(img)
    for i in range(40):
        d.text((40, 40 + 18 * i), "Radiology report: findings and impression, page 1 of 2 " * 2, fill=(20, 20, 20))
    return img


@pytest.fixture(scope="module")
def shipped_predictor():
    from braintumor.inference.predictor import Predictor

    return Predictor.load(backend="torch")


# ----------------------------------------------------------------------------------- the shipped gate


def test_shipped_gate_accepts_the_sample_scans(shipped_predictor, sample_files):
    results = shipped_predictor.predict_batch([p for p, _ in sample_files])
    assert [r["decision"] for r in results].count("rejected") == 0
    assert all(r["ood_score"] <= 1.0 for r in results)


@pytest.mark.parametrize("kind", ["black", "grey", "white", "noise", "salt-pepper", "photo", "document", "tiny"])
def test_shipped_gate_rejects_what_is_not_a_brain_mri(shipped_predictor, sample_files, kind):
    rng = np.random.default_rng(1)
    images = {
        "black": Image.new("L", (256, 256), 0),
        "grey": Image.new("L", (256, 256), 128),
        "white": Image.new("RGB", (300, 200), (255, 255, 255)),
        "noise": Image.fromarray(rng.integers(0, 256, (256, 256), dtype=np.uint8)),
        "salt-pepper": Image.fromarray(np.where(rng.random((256, 256)) < 0.5, 0, 255).astype(np.uint8)),
        "photo": landscape(),
        "document": document(),
        "tiny": Image.open(sample_files[0][0]).resize((40, 40)),
    }
    r = shipped_predictor.predict(images[kind])
    assert r["decision"] == "rejected", (kind, r["ood_score"], r["reason"])
    assert r["prediction_set"] == [] and r["reason"]
    expected = {"black": ood.BLANK, "grey": ood.BLANK, "white": ood.BLANK, "tiny": "40x40 pixels"}
    assert expected.get(kind, ood.ATYPICAL) in r["reason"]
    assert set(r) >= {"label", "confidence", "probabilities"}  # the raw answer is still there


def test_the_gate_can_be_switched_off(sample_files):
    from braintumor.inference.predictor import Predictor

    p = Predictor.load(backend="torch", policy=DecisionPolicy(ood=False))
    r = p.predict(Image.new("L", (256, 256), 0))
    assert r["decision"] != "rejected" and r["ood_score"] is None


def test_an_uncalibrated_checkpoint_still_refuses_blank_and_tiny_images(random_checkpoint):
    from braintumor.inference.predictor import Predictor

    p = Predictor.load(random_checkpoint, backend="torch")
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


def test_gaussian_distance_is_the_squared_mahalanobis_distance():
    rng = np.random.default_rng(0)
    cov = np.array([[4.0, 1.2, 0.0], [1.2, 1.0, 0.3], [0.0, 0.3, 0.5]])
    x = rng.multivariate_normal([1.0, -2.0, 0.5], cov, size=20000)
    g = ood.Gaussian.fit(x, shrink=0.0)
    probe = rng.normal(size=(5, 3))
    r = probe - x.mean(0)
    emp = np.cov(x.T, bias=True)
    expected = np.einsum("nd,de,ne->n", r, np.linalg.inv(emp), r)
    assert np.allclose(g.distance(probe), expected, rtol=1e-4)
    assert g.distance(x).mean() == pytest.approx(3.0, rel=0.05)  # chi-square with 3 degrees


def test_conformal_quantile_bounds_the_rejected_share():
    scores = np.arange(1, 201, dtype=float)
    t = ood.conformal_quantile(scores, 0.05)
    assert t == 191.0  # ceil(0.95 * 201) = 191st smallest
    assert (scores > t).mean() <= 0.05
    m = ood.conformal_quantile(scores, 0.05, midpoint=True)
    assert m == 191.5 and (scores > m).sum() == (scores > t).sum()  # same scores rejected, with room


def test_a_fitted_gate_survives_the_checkpoint_metadata(tmp_path):
    rng = np.random.default_rng(0)
    train_f, val_f = rng.normal(size=(400, 8)), rng.normal(size=(200, 8))
    train_s, val_s = rng.normal(size=(400, 43)), rng.normal(size=(200, 43))
    gate = ood.fit_gate(train_f, train_s, val_f, val_s, rate=0.05)
    raw = np.maximum(gate.features.distance(val_f) / gate.scale_features,
                     gate.stats.distance(val_s) / gate.scale_stats)
    assert (raw > gate.threshold).mean() <= 0.05
    back = ood.OodGate.from_meta(json.loads(json.dumps(gate.to_meta())))
    assert back.threshold == gate.threshold and back.fitted
    px = rng.integers(0, 256, (3, 32, 32), dtype=np.uint8)
    feats = rng.normal(size=(3, 8))
    assert np.allclose(back.scores(px, feats), gate.scores(px, feats))
    checks = back.check([(32, 32), (100, 100), (100, 100)], px, feats)
    assert "32x32" in checks[0][0]


def test_per_class_fitting_bounds_the_rejections_of_every_class():
    """One class (a kind of tumour) sits further out than the others: with the labels, the gate's
    threshold is raised so that this class too loses at most the allowed share."""
    rng = np.random.default_rng(1)
    train_f, train_s = rng.normal(size=(600, 8)), rng.normal(size=(600, 43))
    val_f, val_s = rng.normal(size=(400, 8)), rng.normal(size=(400, 43))
    labels = np.repeat(np.arange(4), 100)
    val_f[labels == 1] *= 1.6  # class 1 is unusual
    plain = ood.fit_gate(train_f, train_s, val_f, val_s, rate=0.02)
    fair = ood.fit_gate(train_f, train_s, val_f, val_s, rate=0.02, val_labels=labels)
    raw = np.maximum(fair.features.distance(val_f) / fair.scale_features,
                     fair.stats.distance(val_s) / fair.scale_stats)
    assert (raw[labels == 1] > plain.threshold).mean() > 0.02  # one threshold fails class 1
    for c in range(4):
        assert (raw[labels == c] > fair.threshold).mean() <= 0.02
    assert set(fair.info["val_rejected_per_class"]) == {"0", "1", "2", "3"}


def test_an_atypical_rejection_names_the_failed_check():
    r = ood.atypical_reason(2.4, 0.5)
    assert r.startswith(ood.ATYPICAL) and "feature check, 2.4x" in r and "image-statistics" not in r
    r = ood.atypical_reason(0.3, 1.7)
    assert "image-statistics check, 1.7x" in r and "feature check" not in r
    assert "does not look like a brain" not in r and "radiologist" in r
