"""The add-on's one exception type for user mistakes: SplatInputError is interchange's InputError itself, so
errors raised by the shared PLY and camera code are the add-on's own (a one-line message naming the file or
object). errors.py, above, adds how operators report it."""

from __future__ import annotations

from ..interchange.errors import InputError as SplatInputError

__all__ = ["SplatInputError"]
