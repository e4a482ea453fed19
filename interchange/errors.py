"""The one exception type for user mistakes: bad files, bad settings, unusable objects, missing resources."""


class InputError(Exception):
    """A problem with the user's input, reported as one line that names the file (or object) and the problem.

    The engine's command line prints it as ``error: <message>`` and exits 2; the Blender add-on shows it in a
    report. Anything else that escapes is a bug in this project.
    """
