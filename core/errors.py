"""User mistakes: the one exception type (bad files, bad settings, missing resources) and its warning.

InputError is interchange's InputError itself (not a copy), so an error raised by the shared PLY or camera code is
caught as the engine's: the command line prints ``error: <message>`` and exits 2.
"""

from interchange.errors import InputError

__all__ = ["InputError", "InputWarning"]


class InputWarning(UserWarning):
    """Input that is accepted but altered or suspicious (transparent painting, zero quaternions, ...).

    Command lines print it as one ``warning: <message>`` line naming the file; the run goes on.
    """
