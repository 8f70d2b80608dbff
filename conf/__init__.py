"""Recipes and configs: :func:`~edgesmith.conf.recipe.load_recipe` loads a YAML recipe
into the dataclass configs of :mod:`~edgesmith.conf.recipe`, each validated on
construction (:class:`~edgesmith.conf.base.Config`)."""

from __future__ import annotations

__all__ = ["base", "recipe", "stage"]
