"""Everything that needs PyTorch (the training install): networks, losses, augmentation, training,
fitting the calibration, the out-of-distribution gate and the box heads, checkpoints, and conversion
to the ONNX graphs that the serving side (:mod:`braintumor.inference`) runs. Nothing is imported
here, so ``import braintumor.training`` works without PyTorch."""
