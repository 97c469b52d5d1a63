"""What runs for every answer: ONNX Runtime, NumPy and Pillow, never PyTorch.

:mod:`~braintumor.inference.predictor` (the :class:`Predictor`), :mod:`~.backends` (how the
network's graphs run), :mod:`~.preprocess` (the one preprocessing), :mod:`~.decision` and
:mod:`~.ood` (classified, uncertain or rejected), :mod:`~.cam` (heat maps) and :mod:`~.similar`
(similar cases). Training, fitting and conversion to ONNX live outside this package and need the
training install. Nothing is imported here: ``from braintumor import Predictor`` loads what it needs.
"""
