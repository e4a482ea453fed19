"""SOS stylizer engine: style transfer for 3D Gaussian Splatting scenes (SGSST, Galerne et al. CVPR 2025).

Entry points: ``core.stylize.stylize`` (Python), ``sos-stylize`` / ``python -m core`` (command line),
``python -m core.worker`` (the Blender add-on's worker process). See docs/architecture.md.
"""

__version__ = "0.1.0"
