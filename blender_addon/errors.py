"""The add-on's user-error type (declared in io/errors.py, bpy-free) and how operators report it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .io.errors import SplatInputError

if TYPE_CHECKING:
    import bpy

__all__ = ["SplatInputError", "run_reported"]


def run_reported(operator: bpy.types.Operator, action: Callable[[], str], target: object = "") -> set[str]:
    """Run an operator's work: its message as an INFO report on success, user errors and write failures as ERROR.

    ``action`` returns the success message; ``target`` names the file or folder in a write failure's message.
    """
    try:
        message = action()
    except SplatInputError as error:
        operator.report({'ERROR'}, str(error))
        return {'CANCELLED'}
    except OSError as error:
        operator.report({'ERROR'}, f"{error.filename or target}: cannot write: {error.strerror or error}")
        return {'CANCELLED'}
    operator.report({'INFO'}, message)
    return {'FINISHED'}
