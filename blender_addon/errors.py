"""The add-on's one exception type for user mistakes (bad files, unusable objects)."""


class SplatInputError(Exception):
    """A user-facing problem: a one-line message that names the file or object and the problem."""
