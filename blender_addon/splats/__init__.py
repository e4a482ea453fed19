"""Splat objects: the mesh that holds the Gaussians, its attributes and viewport display, Blender's own splat
objects, regions, and writing it back (with its transform baked in). Built on the base modules and io/ only."""
