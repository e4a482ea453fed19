"""Add-on preferences: where the stylization worker's Python lives (install.py --blender fills it in), and on which
device and GPUs it stylizes and renders."""

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from ..errors import SplatInputError
from ..interchange.settings import BY_NAME
from ..io.worker_config import cached_check
from ..worker.config import ADDON_PACKAGE, configured_python

MAX_GPUS = 64
DEVICE = BY_NAME["device"]  # the engine's device setting: its choices are the schema's


class SplatStylizerPreferences(bpy.types.AddonPreferences):
    """Settings shown under the add-on in Preferences."""

    bl_idname = ADDON_PACKAGE

    worker_python: StringProperty(
        name="Worker Python", subtype='FILE_PATH', default="",
        description="Python of the environment with torch and gsplat (made by install.py); "
                    "importing, displaying and exporting splats work without it")
    device: EnumProperty(
        name=DEVICE.spec.label, default=DEVICE.ui_default(), items=DEVICE.ui_items(),
        description="Where the worker stylizes and renders (CUDA without a CUDA GPU: the CPU, with a warning)")
    stylize_gpus: IntProperty(
        name="Stylize GPUs", default=1, min=1, max=MAX_GPUS, soft_max=8,
        description="How many GPUs of this machine one stylization uses: each renders its own view of every step "
                    "and the gradients are averaged, so N GPUs take N views per step (the engine's --gpus). More "
                    "than the worker has: all it has, with a warning")
    use_all_gpus: BoolProperty(
        name="All GPUs", default=False,
        description="Stylize on every CUDA GPU the worker sees (the engine's --gpus all)")
    render_gpu: IntProperty(
        name="Render GPU", default=0, min=0, max=MAX_GPUS - 1,
        description="Which CUDA GPU the Gaussian Splats render engine uses: 0 is the first the worker sees "
                    "(after CUDA_VISIBLE_DEVICES, which render farms often set per job); one it does not have "
                    "renders on the first, with a warning")

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "worker_python")
        layout.prop(self, "device")
        gpus = layout.column()
        gpus.active = self.device != 'CPU'
        row = gpus.row(align=True)
        count = row.row(align=True)
        count.active = not self.use_all_gpus
        count.prop(self, "stylize_gpus")
        row.prop(self, "use_all_gpus", toggle=True)
        gpus.prop(self, "render_gpu")
        layout.operator("sos.check_worker", icon='CHECKMARK')
        seen = checked_gpu_count()
        if seen is not None:
            layout.label(text=f"The worker sees {seen} CUDA GPU{'s' if seen != 1 else ''} (last Check)", icon='INFO')


def checked_gpu_count() -> int | None:
    """How many CUDA GPUs the configured worker reported at its last check in this session (None: not known)."""
    try:
        python, _ = configured_python()
    except SplatInputError:
        return None
    info = cached_check(python)
    return info.gpu_count if info is not None else None


CLASSES = (SplatStylizerPreferences,)


register, unregister = bpy.utils.register_classes_factory(CLASSES)
