"""The one exception type for user mistakes: bad files, bad settings, missing resources."""


class InputError(Exception):
    """A problem with the user's input, reported as one line that names the file and the problem.

    Command lines print it as ``error: <message>`` and exit 2; the Blender add-on shows it in a report.
    Anything else that escapes is a bug in this project.
    """
