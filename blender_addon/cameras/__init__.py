"""Cameras: Blender camera <-> OpenCV pinhole maths, camera objects, cameras.json and the orbit rig.
Built on splats/ (cameras are attached to splat objects)."""
