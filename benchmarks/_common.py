"""What the benchmark scripts share: where the repository and the dataset are, and how a benchmark
stops when the data it measures on are not there.

The dataset lives beside the repository, in ``../shared/data`` (:data:`SHARED_DATA`): the MRI
collection's ``brain-tumor-mri/Training`` folder (:data:`TRAINING`) and the radiologist boxes of the
figshare slices, ``tumour-boxes/training-boxes.tsv`` (:data:`TUMOUR_BOXES`). The split file the
shipped model was trained with is ``model/split.json`` in the repository (:data:`SPLIT`).

Missing data: a benchmark whose data are not there is *skipped*, not failed. :func:`require` prints
one line to stderr, ``skipped: PATH is not here (needs ../shared/data/..., or pass --data)``, and
exits with status 0, so that running every benchmark on a checkout without the dataset ends cleanly
and says what each one would need. A benchmark checks its data before importing anything heavy.

Each script is run from the repository root as ``python benchmarks/NAME.py`` and imports this file
as a sibling module, with the same two lines everywhere::

    sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/: _common and siblings
    from _common import REPO, TRAINING, require  # noqa: E402

Python already puts the script's folder first on ``sys.path`` when it runs ``python
benchmarks/NAME.py``; the explicit line keeps the import working where it does not (``python -P``,
``PYTHONSAFEPATH``, ``runpy`` or a file loaded by its path). The ``braintumor`` package itself is
imported as installed in the environment (``pip install -e .``), so nothing here adds ``src/``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
TRAINING = SHARED_DATA / "brain-tumor-mri" / "Training"
TUMOUR_BOXES = SHARED_DATA / "tumour-boxes" / "training-boxes.tsv"
SPLIT = REPO / "model" / "split.json"


def _shown(path: str | os.PathLike) -> str:
    """A path as a user at the repository root would type it (``../shared/data/...``)."""
    p = Path(path)
    if not p.is_absolute():
        return str(path)
    try:
        return os.path.relpath(p, REPO)
    except ValueError:  # another drive (Windows)
        return str(p)


def require(path: str | os.PathLike, needs: str | os.PathLike | None = None, *, file: bool = False,
            option: str | None = None) -> Path:
    """``path`` as a :class:`~pathlib.Path` when it is a folder (a file with ``file=True``).

    Otherwise print ``skipped: PATH is not here (needs NEEDS, or pass OPTION)`` to stderr, on one
    line, and exit with status 0 (:class:`SystemExit`). ``needs`` is where the benchmark expects the
    data (a path is shown relative to the repository root, e.g. ``../shared/data/brain-tumor-mri/
    Training``; a string as it is); ``option`` is the command-line option that points elsewhere.
    """
    p = Path(path)
    if p.is_file() if file else p.is_dir():
        return p
    what = f"is not a {'file' if file else 'folder'}" if p.exists() else "is not here"
    hints = ([f"needs {_shown(needs)}"] if needs is not None else []) + ([f"pass {option}"] if option else [])
    hint = f" ({', or '.join(hints)})" if hints else ""
    print(f"skipped: {p} {what}{hint}", file=sys.stderr)
    raise SystemExit(0)
