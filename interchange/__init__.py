"""What crosses between Blender and the engine, written once: numpy and the standard library only.

The Blender add-on cannot import the engine (torch must never load inside Blender), and the engine must not
import Blender; both import this package. ``install.py`` copies it into the add-on's zip as the subpackage
``sos_stylizer.interchange``; the engine installs it beside ``core``.

    errors       InputError: the one exception type for user mistakes (one line naming the file and problem)
    atomic       atomic_write(): temporary file, then rename; new files get the usual 0644 permissions
    ply          the 3DGS PLY codec and its validation (byte-exact round trips), SplatData
    cameras      Inria cameras.json records, read (validated) and written; pinhole pose <-> viewmat
    colmap       COLMAP text models read as camera records
    rotations    quaternions and rotation matrices (w, x, y, z), the rotation nearest to a matrix
    sh           the real SH basis (degrees 0-4) and how SH coefficients change under a linear map
    transform    baking an object transform into Gaussians: the reference implementation and its rules
    orbit        the orbit camera ring around a scene's dense part
    user_folder  the per-user sos-stylizer folder and the worker settings file in it
    protocol     the job folder, the stylization events, the exit codes and the render worker's requests

Nothing here imports another module of this package at package import time, so ``install.py`` can use the
standard-library modules (atomic, user_folder) before numpy is installed.
"""
