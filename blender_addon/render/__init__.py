"""Rendering through the worker: a view of the scene's splat objects, the PLY cache it sends, colour and PNG
files. Built on splats/, cameras/ and worker/."""
