"""``braintumor export``: convert a checkpoint into the ONNX graphs the serving side runs
(:func:`braintumor.training.conversion.export`), written beside it with a record of their SHA-256
(``<name>.onnx.json``), so that the light install, which has no PyTorch, can use it.

Without ``--model`` it converts the shipped model and records the graphs and their SHA-256 in the
package's manifest: rerun it whenever the shipped checkpoint's weights change."""

from __future__ import annotations

import json
from pathlib import Path


def configure(p) -> None:
    p.add_argument("--model", default=None, metavar="FILE",
                   help="checkpoint (default: the shipped model, whose manifest is then updated)")
    p.add_argument("--calibration", default=None, metavar="DIR",
                   help="scans that calibrate the int8 activations (default: $BRAINTUMOR_CALIBRATION, else "
                        "the scans shipped in the package)")


def run(args) -> int:
    from ..training.conversion import export
    from ..errors import UsageError
    from ..formats import IMAGE_SUFFIXES
    from ..inference.graphs import CALIBRATION_MAX

    calibration = None
    if args.calibration is not None:
        root = Path(args.calibration)
        if not root.is_dir():
            raise UsageError(f"--calibration: no such folder: {root}")
        calibration = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[:CALIBRATION_MAX]
        if not calibration:
            raise UsageError(f"--calibration: no scans under {root}")
    if args.model is not None and not Path(args.model).is_file():
        raise UsageError(f"--model: no such file: {args.model}")
    print(json.dumps(export(args.model, calibration), indent=2))
    return 0
