"""Input conventions of an image bundle: the polarity, colour and range the model was
trained on, recorded in the manifest (``preprocessing.conventions``) and checked by
``edgesmith predict``, which warns when an input looks inverted (a dark "7" on white
paper fed to a model trained on light strokes on black is predicted "8")."""

from __future__ import annotations

from typing import Any

import numpy as np

# an input whose mean brightness lies this far from the training images', on the other
# side of mid-grey, looks inverted
INVERTED_GAP = 0.3


def image_conventions(x01: np.ndarray, channels: int) -> dict[str, Any]:
    """Conventions of training images ``x01`` (floats in [0, 1], any layout)."""
    mean = float(np.asarray(x01, dtype=np.float64).mean())
    dark = mean < 0.5
    return {"mean_brightness": round(mean, 4), "background": "dark" if dark else "light",
            "polarity": "light-on-dark" if dark else "dark-on-light",
            "colour": "grayscale" if channels == 1 else "rgb", "range": [0.0, 1.0],
            "note": ("bright strokes / objects on a dark background, as in the training data; invert "
                     "dark-on-light inputs (255 - x) first") if dark else
                    "dark strokes / objects on a light background, as in the training data"}


def inverted_warnings(raw: Any, manifest: dict) -> list[str]:
    """One warning per input image whose brightness looks inverted against the
    manifest's conventions (none for text bundles or bundles without conventions)."""
    conv = (manifest.get("preprocessing") or {}).get("conventions")
    if not conv or isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], str)):
        return []
    x = np.asarray(raw)
    if x.dtype.kind not in "uif" or x.size == 0:
        return []
    x = x.astype(np.float64) / (255.0 if x.dtype == np.uint8 or x.max() > 1.5 else 1.0)
    size = tuple((manifest.get("preprocessing") or {}).get("size") or ())
    images = x.reshape(-1, *x.shape[-2:]) if x.ndim >= 3 and tuple(x.shape[-2:]) == size else x[None]
    out = []
    for i, img in enumerate(images if images.ndim > 2 else images[None]):
        mean = float(img.mean())
        if abs(mean - conv["mean_brightness"]) > INVERTED_GAP and (mean < 0.5) != (conv["background"] == "dark"):
            out.append(f"input {i} looks inverted: mean brightness {mean:.2f}, while the model was trained on "
                       f"{conv['polarity']} images (mean {conv['mean_brightness']:.2f}); "
                       + ("invert it (255 - x) first" if conv["background"] == "dark" else "it expects a light background"))
    return out
