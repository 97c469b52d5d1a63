"""The heat map (CAM) methods: their names, the pytorch-grad-cam classes behind them and their
labels for people.

Nothing is imported here, so that ``braintumor predict --help``, the web page and the OpenAPI
document read the one list without loading torch; :mod:`braintumor.inference.cam` computes with it.
"""

from __future__ import annotations

# name -> pytorch_grad_cam class name (imported on first use, by braintumor.inference.cam)
CAM_METHODS: dict[str, str] = {
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "hirescam": "HiResCAM",
    "eigencam": "EigenCAM",
}

# name -> how a person reads it (the page's menu and captions)
CAM_LABELS: dict[str, str] = {
    "gradcam": "Grad-CAM",
    "gradcam++": "Grad-CAM++",
    "hirescam": "HiResCAM",
    "eigencam": "EigenCAM",
}

DEFAULT_CAM_METHOD = "gradcam"

# Methods whose map is the same whatever class is asked for (the first principal component of the
# last block's features): their captions never name a class.
CLASS_AGNOSTIC: frozenset[str] = frozenset({"eigencam"})


def caption(method: str, target_name: str) -> str:
    """The caption of a heat map, the same on the page, in the PDF and in ``predict --explain``."""
    label = CAM_LABELS.get(method, method)
    if method in CLASS_AGNOSTIC:
        return f"{label}: the strongest pattern in the model's features (the same for every class)"
    return f"{label}: where the model looked for {target_name}"
