"""brain-tumor-classifier: four-class brain MRI classification with Grad-CAM explanations.

For research and teaching, not for diagnosis. Nothing heavy is imported here: ``Predictor`` and
friends load on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .config import CLASSES, TrainConfig  # noqa: E402  (light: dataclasses and constants only)

__all__ = ["CLASSES", "Predictor", "TrainConfig", "__version__"]


def __getattr__(name: str):
    if name == "Predictor":
        from .inference.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'braintumor' has no attribute {name!r}")
