"""The Stylize panel (3D Viewport > Sidebar > Stylize), its Worker and Render sub-panels, and the status bar
progress while a job runs."""

from __future__ import annotations

import textwrap

import bpy

from ..errors import SplatInputError
from ..interchange.settings import ADVANCED, MAIN, rows
from ..io import render_worker
from ..io.job import StylizeJob
from ..io.worker_config import cached_check, check_problems, describe_check
from ..splats.objects import is_gaussian_object
from ..splats.selection import ATTRIBUTE, SELECTED, point_count, selected_count
from ..stylize import session as stylize_session
from ..worker.config import addon_preferences, configured_python
from .sidebar import SidebarPanel
from .splat_panel import draw_mix

MESSAGE_ICONS = {'INFO': 'INFO', 'WARNING': 'ERROR', 'ERROR': 'CANCEL'}
WRAP_CHARS = 48
COLOUR_NOTE = ("Renders are display-referred sRGB, as 3DGS trains on: use the Standard view transform "
               "so images look as in a 3DGS viewer")


def duration(seconds: float | None) -> str:
    """'1h 02m', '3m 05s' or '12s'."""
    if seconds is None:
        return "?"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def progress_text(job: StylizeJob) -> str:
    """'120/800 · ETA 2m 10s' (or what it is doing before the first iteration, or while it stops)."""
    progress = job.progress
    if job.cancel_deadline is not None:
        return "Cancelling…"
    if job.keep_requested:
        return f"Stopping at {progress.iteration}/{progress.total}, keeping the result…"
    if job.target.preview:
        return "Previewing…"
    if progress.iteration == 0:
        return "Starting the worker…"
    return f"{progress.iteration}/{progress.total} · ETA {duration(progress.eta_s)}"


def wrapped_label(layout: bpy.types.UILayout, text: str, icon: str) -> None:
    """A long message as several label lines, the icon on the first."""
    for index, line in enumerate(textwrap.wrap(text, WRAP_CHARS) or [""]):
        layout.label(text=line, icon=icon if index == 0 else 'BLANK1')


def draw_job(layout: bpy.types.UILayout) -> None:
    """Stylize/Preview/Cancel (and Stop and Keep while a stylization runs), then progress, losses, preview and the
    last messages."""
    job = stylize_session.SESSION.job
    row = layout.row(align=True)
    row.scale_y = 1.4
    row.operator("sos.stylize", icon='BRUSH_DATA')
    row.operator("sos.preview", icon='HIDE_OFF')
    row.operator("sos.cancel", text="Cancel", icon='CANCEL')
    if job is not None and not job.target.preview:
        layout.operator("sos.stop_and_keep", icon='CHECKMARK')
    if job is not None:
        layout.progress(factor=job.progress.fraction, text=progress_text(job))
        if job.progress.style is not None:
            layout.label(text=f"Style loss {job.progress.style:.4g} · content {job.progress.content or 0:.4g}")
    preview = stylize_session.SESSION.preview()
    if preview is not None:
        layout.template_icon(icon_value=preview.icon_id, scale=8.0)
    box = layout.box() if stylize_session.SESSION.messages else None
    for message in stylize_session.SESSION.messages:
        wrapped_label(box, message.text, MESSAGE_ICONS[message.level])


def draw_settings(layout: bpy.types.UILayout, props: bpy.types.PropertyGroup, group: str) -> None:
    """One panel group's rows of the settings schema, in schema order."""
    column = layout.column(align=True)
    for name in rows(group):
        column.prop(props, name)


def draw_region(layout: bpy.types.UILayout, props: bpy.types.PropertyGroup, context: bpy.types.Context) -> None:
    """Region: the whole object, its selected points (with how many are selected) or an attribute."""
    layout.prop(props, "region_source")
    obj = context.view_layer.objects.active if context.view_layer else None
    if props.region_source == ATTRIBUTE:
        layout.prop(props, "region_attribute", icon='GROUP_VERTEX')
    elif props.region_source == SELECTED and is_gaussian_object(obj):
        selected = selected_count(obj)
        text = "No selection yet" if selected is None else f"{selected:,} of {point_count(obj):,} points selected"
        layout.label(text=text, icon='RESTRICT_SELECT_OFF')


class VIEW3D_PT_sos_stylize(SidebarPanel, bpy.types.Panel):
    """Style image, settings, cameras, Stylize / Cancel, progress and preview."""

    bl_label = "Stylize"
    bl_idname = "VIEW3D_PT_sos_stylize"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        props = context.scene.sos_stylize
        layout.template_ID_preview(props, "style_image", open="image.open", rows=3, cols=6)
        draw_settings(layout, props, MAIN)
        draw_region(layout, props, context)
        layout.prop(props, "camera_source", text="")
        if props.camera_source == 'ORBIT':
            row = layout.row(align=True)
            row.prop(props, "orbit_count")
            row.operator("sos.add_orbit_cameras", text="Add Orbit Cameras", icon='OUTLINER_OB_CAMERA')
        draw_job(layout)
        draw_mix(layout, context.view_layer.objects.active if context.view_layer else None)


class VIEW3D_PT_sos_advanced(SidebarPanel, bpy.types.Panel):
    """The less common stylization settings (learning rate, seed, background, VGG, previews, checkpoints)."""

    bl_label = "Advanced"
    bl_idname = "VIEW3D_PT_sos_advanced"
    bl_parent_id = VIEW3D_PT_sos_stylize.bl_idname
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context: bpy.types.Context) -> None:
        draw_settings(self.layout, context.scene.sos_stylize, ADVANCED)


class VIEW3D_PT_sos_worker(SidebarPanel, bpy.types.Panel):
    """The worker's Python, device and its last check."""

    bl_label = "Worker"
    bl_idname = "VIEW3D_PT_sos_worker"
    bl_parent_id = VIEW3D_PT_sos_stylize.bl_idname
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        try:
            python, source = configured_python()
        except SplatInputError as error:
            wrapped_label(layout, str(error), 'ERROR')
            python = None
        else:
            wrapped_label(layout, f"{python} (from {source})", 'SCRIPT')
        prefs = addon_preferences()
        if prefs is not None:
            layout.prop(prefs, "device")
        layout.operator("sos.check_worker", icon='CHECKMARK')
        info = cached_check(python) if python else None
        if info is not None:
            wrapped_label(layout, describe_check(info), 'INFO')
            for problem in check_problems(info):
                wrapped_label(layout, problem, 'ERROR')
        worker = render_worker.current_worker()
        if worker is not None and worker.alive():
            layout.label(text=f"Render worker running on {worker.device}", icon='RENDER_STILL')
        layout.operator("sos.export_job", icon='FILE_FOLDER')


class VIEW3D_PT_sos_render(SidebarPanel, bpy.types.Panel):
    """Rendering splats: the Gaussian Splats engine, colour management, camera renders."""

    bl_label = "Render"
    bl_idname = "VIEW3D_PT_sos_render"
    bl_parent_id = VIEW3D_PT_sos_stylize.bl_idname
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        scene = context.scene
        layout.prop(scene.render, "engine", text="Engine")
        layout.prop(scene.view_settings, "view_transform", text="View")
        if scene.view_settings.view_transform != 'Standard':
            wrapped_label(layout, COLOUR_NOTE, 'INFO')
        layout.prop(scene.render, "film_transparent", text="Transparent Background")
        layout.operator("sos.render_cameras", icon='RENDER_STILL')


def draw_status(self: bpy.types.Header, context: bpy.types.Context) -> None:
    """Status bar: a progress bar while a stylization runs."""
    job = stylize_session.SESSION.job
    if job is not None:
        self.layout.progress(factor=job.progress.fraction,
                             text=f"Stylize {progress_text(job)}")


CLASSES = (VIEW3D_PT_sos_stylize, VIEW3D_PT_sos_advanced, VIEW3D_PT_sos_worker, VIEW3D_PT_sos_render)


_register_classes, _unregister_classes = bpy.utils.register_classes_factory(CLASSES)


def register() -> None:
    _register_classes()
    bpy.types.STATUSBAR_HT_header.append(draw_status)


def unregister() -> None:
    bpy.types.STATUSBAR_HT_header.remove(draw_status)
    _unregister_classes()
