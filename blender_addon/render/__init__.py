"""Rendering through the worker: a view of the scene's splat objects, the PLY cache it sends, cameras rendered to
PNG files (colour, PNG and the worker process are in io/). Built on splats/, cameras/ and worker/."""
