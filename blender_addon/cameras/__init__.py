"""Cameras: Blender cameras read as OpenCV pinhole cameras (io/pinhole.py holds the maths), camera objects <->
cameras.json, the orbit rig, and which cameras an operation works on. Built on splats/ (cameras are attached to
splat objects)."""
