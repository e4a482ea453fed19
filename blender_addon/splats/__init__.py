"""Splat objects: the 3DGS PLY codec, the mesh that holds the Gaussians, its attributes and viewport display,
and writing it back (with its transform baked in). Imports nothing from the other layers."""
