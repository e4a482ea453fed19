"""The worker as the add-on preferences configure it (its Python, device and GPUs). The worker's processes,
self-check and render protocol need no Blender: they are in io/."""
