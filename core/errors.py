"""The one exception type for user mistakes: bad files, bad settings, missing resources.

It is interchange's InputError itself (not a copy), so an error raised by the shared PLY or camera code is caught
as the engine's: the command line prints ``error: <message>`` and exits 2.
"""

from interchange.errors import InputError

__all__ = ["InputError"]
