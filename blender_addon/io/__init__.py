"""The add-on's bpy-free layer: everything that needs neither bpy nor Blender data, as glTF-Blender-IO keeps its
`io/` apart from its Blender code.

Its modules import only numpy, the standard library, the bundled interchange package and each other, and take
plain values (numbers, arrays, paths, dicts), never Blender objects; the layers above read Blender data and call
them. So they are tested as plain Python, without bpy (tests/addon_io/), on any Python the add-on supports.
tests/test_boundaries.py keeps it so.
"""
