import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@pytest.fixture(scope="session")
def edgesmith_cache(tmp_path_factory):
    """A private cache for trained teachers, shared by the tests of one session."""
    path = tmp_path_factory.mktemp("edgesmith-cache")
    old = os.environ.get("EDGESMITH_CACHE")
    os.environ["EDGESMITH_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("EDGESMITH_CACHE", None)
    else:
        os.environ["EDGESMITH_CACHE"] = old
