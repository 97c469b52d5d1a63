"""Similar cases: ``braintumor index``, ``Predictor.similar`` with the near-copy flag, the API's
``similar=K``, ``predict --similar K`` and the case report's list."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image, ImageOps


@pytest.fixture(scope="module")
def index_file(random_checkpoint, sample_dir, tmp_path_factory):
    """An index of the twelve samples, all marked as trained on (a split whose 'train' lists them)."""
    from braintumor.cli import main

    folder = tmp_path_factory.mktemp("index")
    split = folder / "split.json"
    split.write_text(json.dumps({"train": sorted(p.relative_to(sample_dir).as_posix() for p in sample_dir.rglob("*.jpg")),
                                 "val": []}))
    path = folder / "sample-index.safetensors"
    assert main(["index", str(sample_dir), "--out", str(path), "--model", str(random_checkpoint),
                 "--split", str(split)]) == 0
    return path


@pytest.fixture(scope="module")
def indexed(random_checkpoint, index_file):
    from braintumor.inference.predictor import Predictor

    p = Predictor.load(random_checkpoint)
    p.attach_index(index_file)
    return p


def altered(path) -> Image.Image:
    """The same picture mirrored, resized and re-encoded as a low-quality JPEG."""
    img = ImageOps.mirror(Image.open(path).convert("L")).resize((300, 300), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=40)
    return Image.open(io.BytesIO(buf.getvalue()))


def test_index_holds_every_scan_with_label_thumbnail_and_model(index_file, random_checkpoint, sample_files):
    from braintumor.training.checkpoint import load_checkpoint
    from braintumor.inference.similar import CaseIndex

    index = CaseIndex.load(index_file)
    assert len(index) == len(sample_files) == 12 and index.trained.all()
    assert index.model_weights == load_checkpoint(random_checkpoint).weights_digest()
    assert sorted(index.ids) == sorted(f"{p.parent.name}/{p.name}" for p, _ in sample_files)
    for i, rel in enumerate(index.ids):
        assert index.classes[index.labels[i]] == rel.split("/")[0]
    thumb = Image.open(io.BytesIO(index.thumbnail(index.ids[0])))
    assert thumb.format == "JPEG" and max(thumb.size) == 128
    assert np.all(np.diff(index.nn_similarity) >= 0) and len(index.nn_similarity) == 12
    assert np.allclose(np.linalg.norm(index.embeddings, axis=1), 1, atol=1e-3)


def test_an_index_is_refused_for_another_model(index_file, tmp_path):
    from conftest import box_checkpoint

    from braintumor.inference.predictor import Predictor
    from braintumor.inference.similar import CaseIndex, CaseIndexError

    other = Predictor.load(box_checkpoint(tmp_path / "other.safetensors"))
    with pytest.raises(CaseIndexError, match="not with the\n?.*model served"):
        other.attach_index(index_file)
    (tmp_path / "junk.safetensors").write_bytes(b"not an index")
    with pytest.raises(CaseIndexError, match="cannot be read"):
        CaseIndex.load(tmp_path / "junk.safetensors")


def test_index_refuses_an_unwritable_out_before_the_work(sample_dir, tmp_path, capsys, monkeypatch):
    from braintumor.cli import main
    from braintumor.inference import predictor

    def no_model(*a, **k):
        raise AssertionError("the model was loaded before --out was checked")

    monkeypatch.setattr(predictor.Predictor, "load", no_model)
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    for out, words in ((tmp_path, "is a folder"), (tmp_path / "notes.txt" / "i.safetensors", "notes.txt is not a folder")):
        assert main(["index", str(sample_dir), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1, err


def test_similar_flags_the_same_picture_and_only_it(indexed, sample_files):
    for path, label in sample_files[::3]:
        rel = f"{path.parent.name}/{path.name}"
        for query in (path, altered(path)):  # the file itself, then a mirrored re-encoded copy
            found = indexed.similar(query, k=5)
            assert len(found) == 5
            mine = [s for s in found if s["id"] == rel]
            assert mine and mine[0]["match"] == "same picture" and mine[0]["near_copy"] and mine[0]["label"] == label
            assert not any(s["near_copy"] for s in found if s["id"] != rel)  # the other samples are other pictures
            sims = [s["similarity"] for s in found]
            assert sims == sorted(sims, reverse=True)  # in score order
            assert all(0 <= s["closeness"] <= 100 and s["trained"] for s in found)


def test_the_notice_fires_only_for_pictures_the_model_trained_on(random_checkpoint, sample_dir, sample_files, tmp_path):
    from braintumor.inference.predictor import Predictor
    from braintumor.inference.similar import NOTICES, Folder, build_index, seen_before

    p = Predictor.load(random_checkpoint)
    path, _ = sample_files[4]
    trained = frozenset(f"{q.parent.name}/{q.name}" for q, _ in sample_files if q != path)
    build_index(p, [Folder(sample_dir, "", trained)], p.classes, show_progress=False).save(tmp_path / "i.safetensors")
    p.attach_index(tmp_path / "i.safetensors")
    r = p.predict(path, similar=3)
    own = next(s for s in r["similar"] if s["match"] == "same picture")
    assert not own["trained"] and not own["near_copy"] and not r["near_copy"]  # a validation scan: no notice
    assert r["seen_before"] is None and "seen_before_notice" not in r
    other = sample_files[5][0]
    r = p.predict(other, similar=3)
    assert r["near_copy"] and r["seen_before"] == "same picture" and r["seen_before_notice"] == NOTICES["same picture"]
    assert seen_before([{"trained": True, "match": "neighbouring slice"}]) == ("neighbouring slice", NOTICES["neighbouring slice"])
    assert seen_before([{"trained": False, "match": "same picture"}]) == (None, None)


def test_a_rejected_image_gets_no_similar_cases(indexed):
    r = indexed.predict(Image.new("L", (300, 300), 0), similar=3)
    assert r["decision"] == "rejected" and r["similar"] == [] and r["near_copy"] is False


def test_a_new_picture_is_not_a_near_copy(indexed, sample_dir):
    from conftest import synthetic_scan

    found = indexed.similar(Image.fromarray(synthetic_scan(3, 224)), k=3)
    assert len(found) == 3 and not any(s["near_copy"] for s in found)


def test_without_an_index_similar_says_how_to_get_one(predictor, sample_files):
    with pytest.raises(ValueError, match="braintumor index"):
        predictor.similar(sample_files[0][0])


def test_api_similar_cases_with_thumbnails_and_in_the_report(indexed, predictor, sample_files):
    import pypdf

    from braintumor.web import create_app

    path, _ = sample_files[5]
    data = path.read_bytes()
    client = create_app(predictor=indexed).test_client()
    assert 'id="similar"' in client.get("/").get_data(as_text=True)
    r = client.post("/api/predict", data={"file": (io.BytesIO(data), "x.jpg"), "similar": "3", "explain": "false"},
                    content_type="multipart/form-data")
    a = r.get_json()
    assert r.status_code == 200 and len(a["similar"]) == 3 and a["near_copy"] is True
    assert any(s["id"] == f"{path.parent.name}/{path.name}" and s["near_copy"] for s in a["similar"])
    assert all(s["thumbnail"].startswith("data:image/jpeg;base64,") for s in a["similar"])
    r = client.post("/api/report", data={"file": (io.BytesIO(data), "x.jpg"), "similar": "3"},
                    content_type="multipart/form-data")
    text = pypdf.PdfReader(io.BytesIO(r.data)).pages[0].extract_text()
    flat = " ".join(text.split())
    assert not any(s["id"] in flat for s in a["similar"])  # a clinician reads collections, never file paths
    assert "Brain Tumor MRI Dataset, " in flat and "the same picture, which the model was trained on" in flat
    assert "trained on this very picture" in flat and "very close means closer than 90 in 100" in flat

    plain = create_app(predictor=predictor).test_client()  # a model with no index
    assert 'id="similar"' not in plain.get("/").get_data(as_text=True)
    r = plain.post("/api/predict", data={"file": (io.BytesIO(data), "x.jpg"), "similar": "3"},
                   content_type="multipart/form-data")
    assert r.status_code == 400 and "no similar-case index" in r.get_json()["error"]
    r = client.post("/api/predict", data={"file": (io.BytesIO(data), "x.jpg"), "similar": "99"},
                    content_type="multipart/form-data")
    assert r.status_code == 400


def test_predict_similar_on_the_command_line(random_checkpoint, index_file, sample_dir, capsys):
    from braintumor.cli import main

    folder = sample_dir / "pituitary"
    assert main(["predict", str(folder), "--model", str(random_checkpoint), "--index", str(index_file),
                 "--similar", "2", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert len(results) == 3
    for r in results:
        assert len(r["similar"]) == 2 and r["near_copy"] is True
        assert "pituitary/" + r["file"].rsplit("/", 1)[-1] in [s["id"] for s in r["similar"]]
    assert main(["predict", str(folder), "--model", str(random_checkpoint), "--similar", "2"]) == 2
    assert "no similar-case index" in capsys.readouterr().err


def test_faiss_backend_gives_the_same_neighbours(index_file, indexed, sample_files):
    pytest.importorskip("faiss", reason="faiss-cpu is not installed")
    from braintumor.inference.similar import CaseIndex, query_parts

    fast = CaseIndex.load(index_file, backend="faiss")
    gray = Image.open(sample_files[2][0]).convert("L")
    emb = indexed.embed([gray])[0]
    d, f = query_parts(gray)
    assert fast.search(emb, d, f, 4) == indexed.index.search(emb, d, f, 4)


def test_answers_carry_the_similar_cases_of_their_own_forward_pass(indexed, sample_files, monkeypatch):
    """predict, explain and predict_batch with similar=K give what Predictor.similar gives, without
    running the network a second time."""
    paths = [p for p, _ in sample_files[:5]]
    want = [indexed.similar(p, 3) for p in paths]
    runs = []
    network = indexed._members[0].network
    monkeypatch.setattr(indexed._members[0], "network", lambda x: runs.append(len(x)) or network(x))
    def same(got, expected):
        """The same cases at the same similarity. A batch of 5 may differ from a batch of 1 in the
        last digits, which can swap two cases tied to 1e-4 (the random network's features are
        alike), so the cases are compared by id, not by rank."""
        g, e = ({s["id"]: s for s in cases} for cases in (got, expected))
        return g.keys() == e.keys() and all(
            g[i]["match"] == e[i]["match"] and abs(g[i]["similarity"] - e[i]["similarity"]) <= 2e-3 for i in g)

    assert same(indexed.predict(paths[0], similar=3)["similar"], want[0])
    assert same(indexed.explain(paths[1], similar=3)["similar"], want[1])
    batch = indexed.predict_batch(paths, batch_size=5, similar=3)
    assert all(same(b["similar"], w) for b, w in zip(batch, want))
    assert all(b["near_copy"] == any(s["near_copy"] for s in s_) for b, s_ in zip(batch, want))
    assert runs == [1, 1, 5]  # one pass each, the similar cases included


def test_a_similar_case_reads_as_its_collection_class_and_closeness():
    from braintumor.inference.similar import case_line, collection_of

    assert collection_of("tcga-lgg/glioma/TCGA_HT_7692_19960724_17.png") == "TCGA-LGG"
    assert collection_of("glioma/Tr-gl_0118.jpg") == "Brain Tumor MRI Dataset"
    assert collection_of("br35h/tumour/y12.jpg") == "Br35H"
    line = case_line({"id": "tcga-lgg/glioma/TCGA_HT_7692_19960724_17.png", "label": "glioma", "closeness": 97,
                      "match": None, "trained": True})
    assert line == "TCGA-LGG, Glioma: very close"
    assert case_line({"id": "notumor/a.jpg", "label": "notumor", "closeness": 60, "match": "neighbouring slice",
                      "trained": False}) == "Brain Tumor MRI Dataset, No tumour: close, a neighbouring slice, " \
                                             "not used in training"
    assert case_line({"id": "x/y.jpg", "label": "pituitary", "closeness": 3, "match": None,
                      "trained": False}).endswith(": loosely similar")
