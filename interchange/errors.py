"""The one exception type for user mistakes: bad files, bad settings, unusable objects, missing resources."""

from .settings import name_settings


class InputError(Exception):
    """A problem with the user's input, reported as one line that names the file (or object) and the problem.

    The engine's command line prints it as ``error: <message>`` and exits 2; the Blender add-on shows it in a
    report. Anything else that escapes is a bug in this project.

    A message may name settings (interchange.settings.mention): ``str()`` gives them their schema names
    (``learning_rate``, as ``StylizeSettings`` spells them); ``template`` keeps the marks, so that each front end
    names them its own way (the command line by flag, the add-on by label).
    """

    @property
    def template(self) -> str:
        """The message with the settings it names still marked."""
        return str(self.args[0]) if self.args else ""

    def __str__(self) -> str:
        return name_settings(self.template, lambda item: item.name)
