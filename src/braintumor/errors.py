"""The error types every layer raises, in one module that imports nothing of the package, so
that any module can raise them without importing the command line, the web app or each other.

Every one of them is a :class:`ToolError`: its message is one line meant for a person. The command
line prints it on stderr and exits with ``exit_code`` (2); the web app answers it with its HTTP
``status`` (a 4xx: the service keeps running). Anything else is a bug and is shown as one.

| error | raised for | exit | HTTP |
| --- | --- | --- | --- |
| :class:`UsageError` | bad command-line arguments | 2 | - |
| :class:`DataError` | a data folder that cannot be used | 2 | - |
| :class:`BoxesError` | a tumour-boxes file that cannot be read | 2 | - |
| :class:`CheckpointError` | a checkpoint that is missing, damaged or does not fit | 2 | 400 |
| :class:`WeightsError` | pretrained weights that cannot be had or do not fit | 2 | - |
| :class:`ImageError` | an input that cannot be used as an image | 2 | 400 |
| :class:`UnsupportedImageError` | a readable file of a kind this tool does not take | 2 | 415 |
| :class:`CaseIndexError` | a similar-case index that cannot be used | 2 | 400 |
| :class:`FeedbackError` | feedback that cannot be stored | 2 | 400 |
| :class:`NeedsTrainingInstall` | a step that needs PyTorch, in the light install | 2 | 400 |
"""

from __future__ import annotations

TRAIN_INSTALL = "pip install 'brain-tumor-classifier[train]'"  # what adds PyTorch and the training tools
MAX_PIXELS = 50_000_000  # larger images are refused (ImageError) as possible decompression bombs


class ToolError(ValueError):
    """An error whose message is meant for a person (see the table above)."""

    exit_code = 2  # the command line's exit status
    status = 400  # the web API's HTTP status


class UsageError(ToolError):
    """Bad arguments or unusable input on the command line: one line on stderr, exit code 2."""


class DataError(ToolError):
    """A data folder that cannot be used; the message is one line for a person."""


class BoxesError(ToolError):
    """A boxes file that cannot be read."""


class CheckpointError(ToolError):
    """A checkpoint that is missing, damaged or does not fit what it is used for."""


class WeightsError(ToolError):
    """Pretrained weights that cannot be had or do not fit."""


class ImageError(ToolError):
    """An input that cannot be used as an image; the message is meant for a person."""

    status = 400


class UnsupportedImageError(ImageError):
    """A readable file of a kind this tool does not take (animated, multi-page, unknown format)."""

    status = 415


class CaseIndexError(ToolError):
    """A similar-case index that cannot be used (another model, a damaged or foreign file)."""


class FeedbackError(ToolError):
    """Feedback that cannot be stored (unknown answer, bad class, a database that is not ours)."""


class NeedsTrainingInstall(ToolError):
    """A step that needs PyTorch (training, fitting, converting a checkpoint to ONNX) asked of the
    light install, which serves answers without it; the message names the install that has it."""

    def __init__(self, what: str):
        super().__init__(f"{what} needs the training install: {TRAIN_INSTALL}")
