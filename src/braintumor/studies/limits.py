"""How much one study may hold, checked before the work is done.

A study is many files: the limits of one image (:mod:`braintumor.limits`) still hold for each slice,
and these bound the whole: how many files (or .zip entries), how many bytes once unpacked (a .zip's
entries are summed from its directory before anything is inflated), how many slices are answered
and how many pixels are decoded. The library and the command line use :data:`LIBRARY`; the web
service :data:`SERVICE`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..limits import MIB, in_mib, megapixels
from .errors import StudyTooLarge


@dataclass(frozen=True)
class StudyLimits:
    files: int  # files given, or entries of a .zip
    bytes: int  # their bytes, a .zip's entries once inflated
    slices: int  # slices answered, every series together
    pixels: int  # pixels decoded, every slice together

    def describe(self) -> dict:
        return {"max_files": self.files, "max_bytes": self.bytes, "max_slices": self.slices,
                "max_pixels": self.pixels}

    def check_files(self, n: int) -> None:
        if n > self.files:
            raise StudyTooLarge(f"the study has {n:,} files, over the limit of {self.files:,}; "
                                "send one series at a time")

    def check_bytes(self, n: int) -> None:
        if n > self.bytes:
            raise StudyTooLarge(f"the study's files come to {in_mib(n)}, over the {in_mib(self.bytes)} "
                                "limit; send one series at a time")

    def check_slices(self, n: int) -> None:
        if n > self.slices:
            raise StudyTooLarge(f"the study has over {self.slices:,} slices, the limit; "
                                "send one series at a time")

    def check_pixels(self, n: int) -> None:
        if n > self.pixels:
            raise StudyTooLarge(f"the study's slices come to over {megapixels(self.pixels)}s once "
                                "decoded, the limit; send one series at a time")


LIBRARY = StudyLimits(files=20_000, bytes=4096 * MIB, slices=5_000, pixels=1_500_000_000)
SERVICE = StudyLimits(files=1_000, bytes=256 * MIB, slices=400, pixels=100_000_000)

__all__ = ["StudyLimits", "LIBRARY", "SERVICE"]
