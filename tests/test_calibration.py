"""Temperature scaling, split-conformal sets and the decision every Predictor result carries."""

from __future__ import annotations

import json

import numpy as np
import pytest

from braintumor.training import calibration as cal
from braintumor.inference import decision
from braintumor.inference.decision import DecisionPolicy, decide
from braintumor.metrics import expected_calibration_error

CLASSES = ("glioma", "meningioma", "notumor", "pituitary")
DECISIONS = {"classified", "uncertain", "rejected"}


def synthetic_logits(n: int, temperature: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose labels follow softmax(logits / temperature): the true temperature is known."""
    rng = np.random.default_rng(seed)
    true = rng.normal(0, 2.0, (n, 4))
    p = decision.softmax(true)
    labels = np.array([rng.choice(4, p=row) for row in p])
    return true * temperature, labels


# ----------------------------------------------------------------------------------- temperature


@pytest.mark.parametrize("t_true", [0.5, 1.0, 2.5])
def test_fit_temperature_recovers_a_known_temperature(t_true):
    logits, labels = synthetic_logits(20000, t_true)
    t = cal.fit_temperature(logits, labels)
    assert t == pytest.approx(t_true, rel=0.05)
    assert cal.nll(logits, labels, t) <= cal.nll(logits, labels, 1.0) + 1e-9


def test_temperature_scaling_lowers_ece_of_an_overconfident_model():
    logits, labels = synthetic_logits(4000, 3.0, seed=1)
    before = expected_calibration_error(decision.softmax(logits), labels)
    after = expected_calibration_error(decision.softmax(logits, cal.fit_temperature(logits, labels)), labels)
    assert before > 0.05 and after < before / 2


def test_fit_temperature_refuses_no_data():
    with pytest.raises(ValueError, match="no logits"):
        cal.fit_temperature(np.zeros((0, 4)), np.zeros(0, int))


# ----------------------------------------------------------------------------------- conformal


def test_conformal_threshold_is_the_finite_sample_order_statistic():
    scores = np.arange(1, 20) / 20  # 19 scores 0.05 .. 0.95
    assert decision.conformal_threshold(scores, 0.9) == pytest.approx(0.90)  # ceil(20 * 0.9) = 18th
    assert decision.conformal_threshold(scores, 0.5) == pytest.approx(0.50)  # 10th
    assert decision.conformal_threshold(scores, 0.99) == 1.0  # too few scores: every class
    with pytest.raises(ValueError):
        decision.conformal_threshold(scores, 1.5)


@pytest.mark.parametrize("coverage", [0.8, 0.95])
def test_conformal_sets_reach_their_coverage_on_new_data(coverage):
    logits, labels = synthetic_logits(8000, 1.0, seed=2)
    probs = decision.softmax(logits)
    fit, test = slice(0, 3000), slice(3000, None)
    q = decision.conformal_threshold(cal.conformal_scores(probs[fit], labels[fit]), coverage)
    sets = decision.prediction_sets(probs[test], q)
    covered = sets[np.arange(len(sets)), labels[test]].mean()
    assert coverage - 0.015 <= covered <= coverage + 0.03  # valid, and not trivially all classes
    assert sets.sum(1).mean() < 4


def test_top_mass_set_takes_the_fewest_most_probable_classes():
    assert decision.top_mass_set(np.array([0.1, 0.6, 0.25, 0.05]), 0.8) == [1, 2]
    assert decision.top_mass_set(np.array([0.97, 0.01, 0.01, 0.01]), 0.95) == [0]


# ----------------------------------------------------------------------------------- decisions


def test_decide_covers_every_branch():
    sure = np.array([0.97, 0.01, 0.01, 0.01])
    two = np.array([0.48, 0.47, 0.03, 0.02])
    flat = np.array([0.55, 0.25, 0.15, 0.05])
    policy = DecisionPolicy(coverage=0.95)
    d = decide(sure, CLASSES, 0.1, policy)
    assert d["decision"] == "classified" and d["prediction_set"] == ["glioma"]
    d = decide(two, CLASSES, 0.6, policy)  # both above 1 - 0.6
    assert d["decision"] == "uncertain" and d["prediction_set"] == ["glioma", "meningioma"]
    assert d["reason"] == "More than one class fits this scan: Glioma or Meningioma."
    d = decide(flat, CLASSES, 0.1, policy)  # no class reaches 0.9: the classes holding 95%
    assert d["decision"] == "uncertain" and d["prediction_set"] == ["glioma", "meningioma", "notumor"]
    d = decide(sure, CLASSES, 0.1, policy, rejection="not a scan")
    assert d == {"decision": "rejected", "reason": "not a scan", "prediction_set": []}
    d = decide(flat, CLASSES, None, policy)  # no conformal scores in the checkpoint
    assert d["decision"] == "classified" and "no conformal" in d["reason"]
    conf = DecisionPolicy(min_confidence=0.9)
    assert decide(sure, CLASSES, None, conf)["decision"] == "classified"
    d = decide(flat, CLASSES, None, conf)
    assert d["decision"] == "uncertain" and d["prediction_set"] == ["glioma", "meningioma", "notumor"]


def test_policy_refuses_impossible_values():
    with pytest.raises(ValueError, match="coverage"):
        DecisionPolicy(coverage=1.0)
    with pytest.raises(ValueError, match="min_confidence"):
        DecisionPolicy(min_confidence=0.0)


def test_crossfit_reports_out_of_sample_numbers():
    logits, labels = synthetic_logits(1000, 2.0, seed=3)
    out = cal.crossfit(logits, labels, coverage=0.9, repeats=3)
    s = out["summary"]
    assert s["ece_after"]["mean"] < s["ece_before"]["mean"]
    assert 0.85 <= s["coverage_lac"]["mean"] <= 0.95
    assert 0.0 <= s["referral_rate"]["mean"] <= 1.0
    assert out["oof_probs"].shape == logits.shape
    assert np.allclose(out["oof_probs"].sum(1), 1.0)


# ----------------------------------------------------------------------------------- the shipped model


@pytest.fixture(scope="module")
def shipped_predictor():
    from braintumor.inference.predictor import Predictor

    return Predictor.load(backend="torch")


def test_shipped_checkpoint_carries_its_calibration():
    from braintumor.inference import shipped

    ck = shipped.load_default()  # also checks the manifest's SHA-256
    meta = ck.meta
    assert 0.05 < meta["temperature"] < 20
    conf = meta["conformal"]
    assert 0.9 <= conf["coverage"] < 1 and conf["n"] == len(conf["scores"]) > 100
    assert conf["scores"] == sorted(conf["scores"])
    assert meta["ood"]["threshold"] > 0 and meta["ood"]["info"]["val_rejected"] <= 0.01
    from braintumor.training.checkpoint import load_checkpoint

    weights = load_checkpoint(ck.path).state_dict  # stored in half precision
    assert any(v.dtype.is_floating_point and v.dtype.itemsize == 2 for v in weights.values())


def test_predictor_results_carry_consistent_decisions(shipped_predictor, sample_files):
    paths = [p for p, _ in sample_files]
    batch = shipped_predictor.predict_batch(paths, batch_size=5)
    for path, r in zip(paths, batch):
        assert r["decision"] in DECISIONS and isinstance(r["reason"], str) and r["reason"]
        if r["decision"] == "classified":
            assert r["prediction_set"] == [r["label"]]
        elif r["decision"] == "uncertain":
            assert r["label"] in r["prediction_set"] and len(r["prediction_set"]) >= 1
        else:
            assert r["prediction_set"] == []
        assert isinstance(r["ood_score"], float)
        json.dumps(r)  # plain Python types only
    one = shipped_predictor.predict(paths[0])
    assert {k: one[k] for k in ("decision", "prediction_set")} == \
        {k: batch[0][k] for k in ("decision", "prediction_set")}
    e = shipped_predictor.explain(paths[0])
    assert e["decision"] == one["decision"] and e["prediction_set"] == one["prediction_set"]


def test_the_referral_policy_is_configurable(sample_files):
    from braintumor.inference import shipped
    from braintumor.inference.predictor import Predictor

    paths = [p for p, _ in sample_files]
    strict = Predictor.load(backend="torch", policy=DecisionPolicy(min_confidence=0.999999))
    assert strict.policy.min_confidence == 0.999999
    decisions = [r["decision"] for r in strict.predict_batch(paths)]
    assert "uncertain" in decisions and "rejected" not in decisions
    lax = Predictor.load(backend="torch", policy=DecisionPolicy(min_confidence=0.25))
    answers = lax.predict_batch(paths)
    assert [r["decision"] for r in answers].count("classified") > decisions.count("classified")
    # a low threshold classifies every tumour answer; "no tumour" still has the no-tumour rule to pass
    assert all(r["decision"] == "classified" for r in answers if r["label"] != "notumor")
    meta = [shipped.load_default().meta]
    # a higher coverage admits less probable classes into the sets
    assert decision.Decider(meta, CLASSES, DecisionPolicy(coverage=0.99)).threshold > \
        decision.Decider(meta, CLASSES, DecisionPolicy(coverage=0.95)).threshold


def test_calibration_entries_are_json_and_in_sample_consistent():
    logits, labels = synthetic_logits(500, 2.0, seed=4)
    e = cal.calibration_entries(logits, labels, coverage=0.9)
    json.dumps(e)
    assert e["calibration"]["nll_after"] <= e["calibration"]["nll_before"]
    assert e["conformal"]["threshold"] == pytest.approx(
        decision.conformal_threshold(np.array(e["conformal"]["scores"]), 0.9), abs=1e-6)


def test_evaluate_still_works_on_the_sample_scans(sample_dir):
    from braintumor.inference.evaluate import evaluate

    report = evaluate(str(sample_dir), device="cpu", show_progress=False)
    assert report["n"] == 12 and report["accuracy"] >= 0.75
    assert report["model"]["temperature"] != 1.0


# ----------------------------------------------------------------------------------- no tumour rule


def test_notumor_rule_refers_no_tumour_answers_that_carry_tumour_evidence():
    rng = np.random.default_rng(0)
    n = 200
    healthy = np.tile([0.01, 0.01, 0.97, 0.01], (n, 1)) + rng.uniform(0, 0.01, (n, 4))
    missed = np.tile([0.35, 0.02, 0.6, 0.03], (5, 1))  # tumours the model calls "no tumour"
    probs = np.vstack([healthy, missed])
    probs /= probs.sum(1, keepdims=True)
    labels = np.array([2] * n + [0] * 5)
    rule = cal.fit_notumor_rule(probs, labels, CLASSES)
    assert rule["val_missed_tumours"] == 5 and rule["val_missed_tumours_classified"] == 0
    assert cal.NOTUMOR_REFERRAL[0] - 0.01 <= rule["val_notumor_referred"] <= cal.NOTUMOR_REFERRAL[1]
    policy = DecisionPolicy()
    for p in missed:
        d = decide(p / p.sum(), CLASSES, None, policy, notumor_rule=rule)
        assert d["decision"] == "uncertain" and "glioma" in d["prediction_set"] and "missed tumour" in d["reason"]
    clear = np.array([0.005, 0.005, 0.985, 0.005])  # less tumour evidence than any validation scan
    d = decide(clear, CLASSES, None, policy, notumor_rule=rule)
    assert d["decision"] == "classified"
    # the box head's score is a second piece of evidence
    boxes = np.r_[rng.uniform(0, 0.1, n), np.full(5, 0.9)]
    rule2 = cal.fit_notumor_rule(probs, labels, CLASSES, boxes)
    assert "max_box_score" in rule2
    assert decide(clear, CLASSES, None, policy, notumor_rule=rule2, box_score=0.0)["decision"] == "classified"
    d = decide(clear, CLASSES, None, policy, notumor_rule=rule2, box_score=0.95)
    assert d["decision"] == "uncertain" and "locator" in d["reason"]
    # tumour answers are never touched by the rule
    sure = np.array([0.97, 0.01, 0.01, 0.01])
    assert decide(sure, CLASSES, None, policy, notumor_rule=rule)["decision"] == "classified"


def test_decisions_use_the_coverage_the_model_was_calibrated_for():
    from braintumor.inference.decision import Decider, conformal_threshold

    scores = np.linspace(0.0, 0.9, 200)
    meta = {"conformal": {"scores": scores.tolist(), "coverage": 0.99}}
    own = Decider([meta], CLASSES)
    assert own.policy.coverage == 0.99
    assert own.threshold == conformal_threshold(scores, 0.99)
    asked = Decider([meta], CLASSES, DecisionPolicy(coverage=0.9))  # a caller's choice wins
    assert asked.threshold == conformal_threshold(scores, 0.9) < own.threshold
    older = Decider([{"conformal": {"scores": scores.tolist()}}], CLASSES)  # recorded no coverage
    assert older.policy.coverage == 0.95


def test_a_higher_referral_cap_lets_fewer_missed_tumours_through():
    """Missed tumours that look like the healthy scans' upper tail: at most 10% referred, the rule
    must let some through; with a cap of 30% it can stop them all, and it refers no more than it
    needs to."""
    rng = np.random.default_rng(1)
    n = 200
    ev = rng.uniform(0.0, 0.2, n)  # the healthy scans' largest tumour-class probability
    healthy = np.c_[ev, np.full(n, 0.01), 0.98 - ev, np.full(n, 0.01)]
    missed = np.c_[np.full(6, 0.17), np.full(6, 0.01), np.full(6, 0.81), np.full(6, 0.01)]
    probs = np.vstack([healthy, missed])
    labels = np.array([2] * n + [0] * 6)
    tight = cal.fit_notumor_rule(probs, labels, CLASSES)
    loose = cal.fit_notumor_rule(probs, labels, CLASSES, referral=(0.05, 0.30))
    assert tight["val_missed_tumours_classified"] == 6 and tight["val_notumor_referred"] <= 0.10
    assert loose["val_missed_tumours_classified"] == 0 and 0.10 < loose["val_notumor_referred"] <= 0.30


def test_calibrate_refuses_a_referral_cap_below_the_floor(capsys):
    from braintumor.cli import main

    assert main(["calibrate", "--data", ".", "--split", "x.json", "--notumor-referral", "0.01"]) == 2
    err = capsys.readouterr().err
    assert "--notumor-referral" in err and len(err.strip().splitlines()) == 1
