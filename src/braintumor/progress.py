"""The progress bar every long loop shows: training, fitting, indexing, auditing, answering many files."""

from __future__ import annotations

import os
import sys


def progress(iterable=None, total=None, desc="", unit="img", disable=None):
    """A tqdm bar on stderr (rate and time left), hidden when stderr is not a terminal in CI logs."""
    from tqdm.auto import tqdm

    if disable is None:
        disable = os.environ.get("BRAINTUMOR_NO_PROGRESS") == "1"
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, disable=disable,
                dynamic_ncols=True, leave=False)
