import shutil
from pathlib import Path

import pytest

RECIPE = Path(__file__).with_name("tiny-search.yaml")


@pytest.fixture(scope="session")
def search_run(tmp_path_factory, edgesmith_cache):
    """One 4-trial search of the tiny digits recipe (local backend), shared by the tests."""
    pytest.importorskip("optuna")
    from edgesmith.search import search

    out = tmp_path_factory.mktemp("search") / "run"
    result = search(str(RECIPE), out)
    return out, result


@pytest.fixture
def search_copy(search_run, tmp_path):
    """A copy of the finished search folder that a test may extend."""
    out, _ = search_run
    dst = tmp_path / "run"
    shutil.copytree(out, dst)
    return dst
