"""User mistakes: the one exception type (bad files, bad settings, missing resources) and its warning."""


class InputError(Exception):
    """A problem with the user's input, reported as one line that names the file and the problem.

    Command lines print it as ``error: <message>`` and exit 2; the Blender add-on shows it in a report.
    Anything else that escapes is a bug in this project.
    """


class InputWarning(UserWarning):
    """Input that is accepted but altered or suspicious (transparent painting, zero quaternions, ...).

    Command lines print it as one ``warning: <message>`` line naming the file; the run goes on.
    """
