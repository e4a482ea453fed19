"""A splat scene brought into Blender: a PLY and its cameras as a new collection, or cameras alone attached to a
splat. What the File > Import operators run. Built on splats/ and cameras/."""
