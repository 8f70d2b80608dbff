"""Every data source: the shared contract, then the real numbers of each set."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgesmith.conf.recipe import SourceConfig
from edgesmith.data import SOURCES, RawData, load_source
from edgesmith.data.images import ANIMAL_CLASSES, FASHION_CLASSES, PHOTO_CROPS, PHOTOS
from edgesmith.data.texts import fortune_entries, split_gloss
from edgesmith.errors import DataError, RecipeError


def _text_file(tmp: Path) -> Path:
    p = tmp / "t.tsv"
    p.write_text("text\tlabel\ngood film\tpos\nbad film\tneg\nfine\tpos\n")
    return p


# name -> (tmp_path, dh) -> SourceConfig; one per registered source (checked below).
CASES = {
    "fashion-mnist": lambda tmp, dh: SourceConfig("fashion-mnist", limit=500),
    "digits": lambda tmp, dh: SourceConfig("digits", limit=500),
    "animal-mnist": lambda tmp, dh: SourceConfig("animal-mnist", limit=500),
    "photos": lambda tmp, dh: SourceConfig("photos", limit=50),
    "vader": lambda tmp, dh: SourceConfig("vader", limit=500),
    "fortunes": lambda tmp, dh: SourceConfig("fortunes", limit=500),
    "wordnet": lambda tmp, dh: SourceConfig("wordnet", limit=500),
    "npz": lambda tmp, dh: SourceConfig("npz", path=str(dh.write_npz(tmp / "d.npz", test=4))),
    "text": lambda tmp, dh: SourceConfig("text", path=str(_text_file(tmp))),
    "image-folder": lambda tmp, dh: SourceConfig(
        "image-folder", path=str(dh.write_image_folder(tmp / "f"))
    ),
    "hf-disk": lambda tmp, dh: SourceConfig("hf-disk", path=str(_hf_folder(tmp))),
}


def _hf_folder(tmp: Path) -> Path:
    import datasets

    d = datasets.DatasetDict(
        train=datasets.Dataset.from_dict({"text": ["a", "b", "c"], "label": [0, 1, 0]}),
        test=datasets.Dataset.from_dict({"text": ["d", "e"], "label": [1, 0]}),
    )
    d.save_to_disk(str(tmp / "hf"))
    return tmp / "hf"


def test_every_source_has_a_case():
    assert sorted(CASES) == sorted(SOURCES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_source_contract(name, tmp_path, dh):
    if name in dh.NEEDS:
        dh.need(name)
    cfg = CASES[name](tmp_path, dh)
    spec = SOURCES.get(name)
    parts = load_source(cfg)
    assert "train" in parts and set(parts) <= {"train", "test"}
    if spec.official_test:
        assert "test" in parts
    for raw in parts.values():
        assert isinstance(raw, RawData) and len(raw) > 0
        assert spec.kind in (raw.kind, "any")
        assert len(raw) <= (cfg.limit or len(raw))
        if raw.kind == "image":
            assert raw.x.dtype == np.float32 and raw.x.ndim == 4
            assert 0.0 <= raw.x.min() and raw.x.max() <= 1.0
        else:
            assert all(isinstance(t, str) and t.strip() == t and t for t in raw.x)
        if raw.y is not None:
            assert raw.y.dtype == np.int64 and raw.y.shape == (len(raw),)
            assert 0 <= raw.y.min() and raw.y.max() < len(raw.classes)


def test_fashion_mnist_real_numbers(dh):
    dh.need("fashion-mnist")
    parts = load_source(SourceConfig("fashion-mnist"))
    train, test = parts["train"], parts["test"]
    assert train.x.shape == (60000, 1, 28, 28) and test.x.shape == (10000, 1, 28, 28)
    assert np.bincount(train.y).tolist() == [6000] * 10
    assert np.bincount(test.y).tolist() == [1000] * 10
    assert train.classes == FASHION_CLASSES and train.classes[9] == "Ankle boot"
    assert train.x.min() == 0.0 and train.x.max() == 1.0
    assert train.x.mean() == pytest.approx(0.2860, abs=5e-4)  # the published mean, 72.94 / 255


def test_cached_arrays_are_read_only_and_subsets_writable(dh):
    dh.need("fashion-mnist")
    train = load_source(SourceConfig("fashion-mnist"))["train"]
    with pytest.raises(ValueError):
        train.x[0, 0, 0, 0] = 1.0
    sub = train.subset([3, 1])
    sub.x[0] = 0.0
    assert sub.y.tolist() == train.y[[3, 1]].tolist()


def test_digits_real_numbers(dh):
    dh.need("digits")
    raw = load_source(SourceConfig("digits"))["train"]
    assert raw.x.shape == (1797, 1, 8, 8) and raw.x.max() == 1.0
    assert np.bincount(raw.y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_animal_mnist_real_numbers_and_limit_keeps_every_class(dh):
    dh.need("animal-mnist")
    raw = load_source(SourceConfig("animal-mnist"))["train"]
    assert raw.x.shape == (10000, 1, 28, 28) and raw.classes == ANIMAL_CLASSES
    assert np.bincount(raw.y).tolist() == [1000] * 10
    assert raw.y[:1000].tolist() == [0] * 1000  # the file is sorted by label ...
    capped = load_source(SourceConfig("animal-mnist", limit=200))["train"]
    assert len(capped) == 200 and len(np.unique(capped.y)) == 10  # ... the cap is not a prefix
    again = load_source(SourceConfig("animal-mnist", limit=200))["train"]
    assert np.array_equal(capped.x, again.x)


def test_photos_split_by_photo_and_repeatable(dh):
    dh.need("photos")
    parts = load_source(SourceConfig("photos", image_size=64))
    train, test = parts["train"], parts["test"]
    assert not set(train.classes) & set(test.classes), "no photo on both sides"
    assert train.classes == PHOTOS["train"] and test.classes == PHOTOS["test"]
    assert len(train) == len(PHOTOS["train"]) * PHOTO_CROPS and test.x.shape[1:] == (3, 64, 64)
    assert np.bincount(test.y).tolist() == [PHOTO_CROPS] * len(PHOTOS["test"])
    # real photos: colour, texture, no two crops alike
    assert 0.3 < float(test.x.mean()) < 0.6 and float(test.x.std()) > 0.15
    flat = test.x.reshape(len(test), -1)
    assert len({hash(r.tobytes()) for r in flat}) == len(test)
    again = load_source(SourceConfig("photos", image_size=64))["test"]
    assert np.array_equal(again.x, test.x)


@pytest.mark.parametrize(
    "domain, n, positive",
    [("movie", 10605, 5242), ("amazon", 3708, 2128), ("tweets", 4200, 2897), ("nyt", 5190, 2204)],
)
def test_vader_domains(domain, n, positive, dh):
    dh.need("vader")
    raw = load_source(SourceConfig("vader", domain=[domain]))["train"]
    assert len(raw) == n and raw.classes == ["negative", "positive"]
    assert int(raw.y.sum()) == positive
    assert 0.4 < raw.y.mean() < 0.7  # both labels well represented


def test_vader_all_domains_and_a_known_snippet(dh):
    dh.need("vader")
    raw = load_source(SourceConfig("vader"))["train"]
    assert len(raw) == 23703
    i = raw.x.index("Effective but too tepid biopic")  # mean valence -0.6
    assert raw.y[i] == 0


def test_vader_missing_data_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGESMITH_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DataError) as e:
        load_source(SourceConfig("vader", domain=["tweets"]))
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / "nowhere" / "vader") in msg
    assert "python -m edgesmith.data.fetch" in msg


def test_fortunes_real_numbers(dh):
    dh.need("fortunes")
    raw = load_source(SourceConfig("fortunes"))["train"]
    assert 13_000 < len(raw) < 16_000 and raw.y is None
    assert max(map(len, raw.x)) <= 400 and "%" not in raw.x
    assert not any("\x08" in t or "\n" in t for t in raw.x)


def test_fortune_entries_parsing():
    text = "A _\bb_\bo_\bl_\bd  word.\n%\n\n%\nTwo\n   lines\n%\n\x08the ___\b\b\bEND!\n"
    assert fortune_entries(text) == ["A bold word.", "Two lines", "the END!"]


def test_wordnet_real_numbers(dh):
    dh.need("wordnet")
    raw = load_source(SourceConfig("wordnet"))["train"]
    # WordNet 3.0: 117,659 synset glosses give one definition each, plus 48,339 examples,
    # less the 1,973 held-out synsets' texts (and their duplicates elsewhere): 4,840 texts
    assert len(raw) == 117_659 + 48_339 - 4_840
    assert (
        "that which is perceived or known or inferred to have its own distinct existence"
        in raw.x[0]
    )


def test_split_gloss():
    g = 'cause to be calm; "The patient must be sedated"; "Calm down" - Shakespeare'
    assert split_gloss(g) == ("cause to be calm", ["The patient must be sedated", "Calm down"])
    assert split_gloss("an entity that has physical existence  ") == (
        "an entity that has physical existence",
        [],
    )


def test_npz_layouts(tmp_path, dh):
    p = tmp_path / "a.npz"
    np.savez(p, x=np.full((4, 5, 6, 3), 255, np.uint8), y=np.array([0, 2, 1, 2]))
    raw = load_source(SourceConfig("npz", path=str(p)))["train"]
    assert raw.x.shape == (4, 3, 5, 6) and raw.x.max() == 1.0 and raw.x.flags.c_contiguous
    assert raw.classes == ["0", "1", "2"]
    np.savez(
        p, x=np.zeros((4, 5, 6), np.uint8), classes=np.array(["a", "b"]), y=np.array([0, 1, 1, 0])
    )
    raw = load_source(SourceConfig("npz", path=str(p)))["train"]
    assert raw.x.shape == (4, 1, 5, 6) and raw.classes == ["a", "b"]
    parts = load_source(
        SourceConfig("npz", path=str(dh.write_npz(tmp_path / "b.npz", n=10, test=3)))
    )
    assert len(parts["train"]) == 10 and len(parts["test"]) == 3


@pytest.mark.parametrize(
    "arrays, words",
    [
        ({"images": np.zeros((2, 3, 3))}, "no array named 'x'"),
        ({"x": np.full((2, 3, 3), 2.0)}, "must be in [0, 1]"),
        ({"x": np.zeros((2, 3, 3)), "y": np.array([0])}, "integer labels"),
    ],
)
def test_npz_errors(tmp_path, arrays, words):
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    with pytest.raises(DataError, match=None) as e:
        load_source(SourceConfig("npz", path=str(p)))
    assert words in str(e.value) and str(p) in str(e.value) and "\n" not in str(e.value)


def test_text_files(tmp_path):
    txt = tmp_path / "a.txt"
    txt.write_bytes("caf\xe9 one\n\n  two  \n".encode("latin-1"))
    assert load_source(SourceConfig("text", path=str(txt)))["train"].x == ["café one", "two"]
    raw = load_source(SourceConfig("text", path=str(_text_file(tmp_path))))["train"]
    assert raw.x == ["good film", "bad film", "fine"] and raw.classes == ["neg", "pos"]
    assert raw.y.tolist() == [1, 0, 1]
    csv = tmp_path / "b.csv"
    csv.write_text('body,stars\n"hello, world",1\nbye,0\n,1\n')
    raw = load_source(SourceConfig("text", path=str(csv), text_field="body", label_field="stars"))
    assert raw["train"].x == ["hello, world", "bye"] and raw["train"].y.tolist() == [1, 0]
    with pytest.raises(DataError, match="no column 'text'"):
        load_source(SourceConfig("text", path=str(csv)))


def test_image_folder(tmp_path, dh):
    root = dh.write_image_folder(tmp_path / "f", per_class=3, size=(6, 4))
    raw = load_source(SourceConfig("image-folder", path=str(root)))["train"]
    assert raw.x.shape == (6, 3, 4, 6) and raw.classes == ["cat", "dog"]
    assert raw.y.tolist() == [0, 0, 0, 1, 1, 1]
    assert raw.x[4].max() == pytest.approx(41 / 255)
    small = load_source(SourceConfig("image-folder", path=str(root), image_size=2, grayscale=True))
    assert small["train"].x.shape == (6, 1, 2, 2)
    dh.write_image_folder(tmp_path / "g" / "train")
    dh.write_image_folder(tmp_path / "g" / "test", per_class=1)
    parts = load_source(SourceConfig("image-folder", path=str(tmp_path / "g")))
    assert len(parts["train"]) == 6 and len(parts["test"]) == 2


def test_image_folder_mixed_sizes_need_image_size(tmp_path, dh):
    from PIL import Image

    root = dh.write_image_folder(tmp_path / "f", per_class=1)
    Image.new("RGB", (9, 9)).save(root / "cat" / "big.png")
    with pytest.raises(DataError, match="set image_size"):
        load_source(SourceConfig("image-folder", path=str(root)))
    assert (
        len(load_source(SourceConfig("image-folder", path=str(root), image_size=4))["train"]) == 3
    )


def test_hf_disk_without_datasets_is_one_line(tmp_path, dh):
    if dh.NEEDS["hf-disk"][0]():
        pytest.skip("datasets is installed: the missing-package error cannot happen")
    with pytest.raises(DataError) as e:
        load_source(SourceConfig("hf-disk", path=str(tmp_path)))
    assert "'datasets'" in str(e.value) and "pip install datasets" in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_files_are_one_line_data_errors(tmp_path, dh):
    cfg = SourceConfig("npz", path=str(dh.write_npz(tmp_path / "gone.npz")))
    (tmp_path / "gone.npz").unlink()
    with pytest.raises(DataError) as e:
        load_source(cfg)
    assert str(e.value) == f"{tmp_path / 'gone.npz'} not found: fix the path of source 'npz'"
    with pytest.raises(DataError) as e:
        load_source(SourceConfig("fashion-mnist", path=str(tmp_path)))
    msg = str(e.value)
    assert "\n" not in msg and "train-images-idx3-ubyte.gz not found" in msg
    assert "dataset-fashion-mnist" in msg


def test_source_config_uses_the_registry(tmp_path):
    with pytest.raises(RecipeError, match="did you mean 'fashion-mnist'"):
        SourceConfig("fashion-mnis")
    with pytest.raises(RecipeError, match="needs a path"):
        SourceConfig("npz")
    with pytest.raises(RecipeError, match="unknown domain 'reddit'"):
        SourceConfig("vader", domain=["reddit"])


def test_import_is_lean():
    code = (
        "import sys, edgesmith.data, edgesmith.data.fetch; "
        "print(','.join(m for m in ('torch', 'sklearn', 'PIL', 'datasets') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
