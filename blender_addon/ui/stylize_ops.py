"""Operators of the Stylize workflow: stylize, preview, cancel, stop and keep, add an orbit rig, export a job folder,
check the worker."""

from pathlib import Path

import bpy
from bpy.props import BoolProperty, IntProperty, StringProperty

from ..cameras.orbit import create_orbit_rig
from ..errors import SplatInputError, run_reported
from ..io.worker_config import check_problems, check_worker, describe_check, require_compatible
from ..splats.edit_mode import object_mode
from ..stylize import session as stylize_session
from ..stylize.launch import active_splat, export_job, start_job
from ..worker.config import worker_python


ASYNC_DESCRIPTION = "In background mode too, return at once and leave the job to the session timer"


class StartJob:
    """What Stylize and Preview share: start the job in the worker, then run it to its end in background mode or
    leave it to the session timer. ``preview`` says which job."""

    preview = False

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if stylize_session.SESSION.job is not None:
            cls.poll_message_set("A stylization is already running (Cancel stops it)")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            with object_mode(active_splat(context)):  # the latest edits and selection, then back to Edit mode
                job = start_job(context, self.preview)
        except SplatInputError as error:
            self.report({'ERROR'}, str(error))
            return {'CANCELLED'}
        stylize_session.begin(job)
        for warning in job.target.warnings:
            self.report({'WARNING'}, warning)
        if bpy.app.background and not self.run_async:
            return self.report_all(stylize_session.run_to_end())
        stylize_session.watch()
        doing = "Previewing" if self.preview else "Stylizing"
        self.report({'INFO'}, f"{doing} {job.target.object_name} in the worker (Cancel stops it)")
        return {'FINISHED'}

    def report_all(self, messages: list[stylize_session.Message]) -> set[str]:
        """Report a finished job's messages; CANCELLED when one is an error."""
        for message in messages:
            self.report({message.level}, message.text)
        return {'CANCELLED'} if any(m.level == 'ERROR' for m in messages) else {'FINISHED'}


class SOS_OT_stylize(StartJob, bpy.types.Operator):
    """Stylize the active splat object with the chosen painting (runs in a worker process; the result is a new
    object, the original is only hidden)"""

    bl_idname = "sos.stylize"
    bl_label = "Stylize"
    bl_options = {'REGISTER'}

    run_async: BoolProperty(name="Don't Wait", default=False, options={'HIDDEN', 'SKIP_SAVE'},
                            description=ASYNC_DESCRIPTION)


class SOS_OT_preview(StartJob, bpy.types.Operator):
    """Preview the painting on the active splat object in seconds: the capture with the painting's colour mean and
    covariance (a closed form, no optimisation), as a '(preview)' object that the next Stylize or Preview replaces"""

    bl_idname = "sos.preview"
    bl_label = "Preview"
    bl_options = {'REGISTER'}
    preview = True

    run_async: BoolProperty(name="Don't Wait", default=False, options={'HIDDEN', 'SKIP_SAVE'},
                            description=ASYNC_DESCRIPTION)


class SOS_OT_cancel(bpy.types.Operator):
    """Stop the running stylization (the scene stays as it was)"""

    bl_idname = "sos.cancel"
    bl_label = "Cancel Stylize"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if stylize_session.SESSION.job is None:
            cls.poll_message_set("No stylization is running")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        stylize_session.cancel()
        self.report({'INFO'}, "Cancelling the stylization")
        return {'FINISHED'}


class SOS_OT_stop_and_keep(bpy.types.Operator):
    """Stop the running stylization at its next iteration and bring back its result so far as the stylized object"""

    bl_idname = "sos.stop_and_keep"
    bl_label = "Stop and Keep"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        job = stylize_session.SESSION.job
        if job is None or job.target.preview:
            cls.poll_message_set("No stylization is running")
            return False
        if job.stopping:
            cls.poll_message_set("The stylization is already stopping")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        stylize_session.stop_and_keep()
        self.report({'INFO'}, "Stopping the stylization; its result so far comes back as the stylized object")
        return {'FINISHED'}


class SOS_OT_add_orbit_cameras(bpy.types.Operator):
    """Create (or replace) an orbit camera rig around the active splat object, as cameras you can adjust"""

    bl_idname = "sos.add_orbit_cameras"
    bl_label = "Add Orbit Cameras"
    bl_options = {'REGISTER', 'UNDO'}

    count: IntProperty(name="Views", default=0, min=0, max=512,
                       description="Number of cameras (0: the Stylize panel's Views setting)")

    def execute(self, context: bpy.types.Context) -> set[str]:
        def add_rig() -> str:
            obj = active_splat(context)
            cameras = create_orbit_rig(obj, context.scene, self.count or context.scene.sos_stylize.orbit_count)
            return f"Added {len(cameras)} orbit cameras around {obj.name}"

        return run_reported(self, add_rig)


class SOS_OT_export_job(bpy.types.Operator):
    """Write a self-contained stylization job folder (run it anywhere with: python -m core @args.txt)"""

    bl_idname = "sos.export_job"
    bl_label = "Export Stylize Job"

    directory: StringProperty(name="Folder", subtype='DIR_PATH', description="The job folder to write")

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        context.window_manager.fileselect_add(self)
        return {'RUNNING_MODAL'}

    def execute(self, context: bpy.types.Context) -> set[str]:
        if not self.directory:
            self.report({'ERROR'}, "Choose a folder for the job")
            return {'CANCELLED'}
        folder = Path(bpy.path.abspath(self.directory))

        def write_job() -> str:
            with object_mode(active_splat(context)):
                export_job(context, folder)
            return f"Wrote the job to {folder}; run it there with: python -m core @args.txt"

        return run_reported(self, write_job, folder)


class SOS_OT_check_worker(bpy.types.Operator):
    """Check the worker's Python: engine and protocol versions, torch, CUDA GPU, gsplat and the VGG-19 weights"""

    bl_idname = "sos.check_worker"
    bl_label = "Check Worker"

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            python = worker_python()
            info = check_worker(python, refresh=True)
            self.report({'INFO'}, f"Worker {python}: {describe_check(info)}")
            require_compatible(info)
        except SplatInputError as error:
            self.report({'ERROR'}, str(error))
            return {'CANCELLED'}
        for problem in check_problems(info):
            self.report({'WARNING'}, problem)
        return {'FINISHED'}


@bpy.app.handlers.persistent
def stop_on_file_load(_scene, _data=None) -> None:
    """A file is being loaded: the running job's scene is going away, so stop its worker."""
    stylize_session.shutdown()


CLASSES = (SOS_OT_stylize, SOS_OT_preview, SOS_OT_cancel, SOS_OT_stop_and_keep, SOS_OT_add_orbit_cameras,
           SOS_OT_export_job, SOS_OT_check_worker)


_register_classes, _unregister_classes = bpy.utils.register_classes_factory(CLASSES)


def register() -> None:
    _register_classes()
    bpy.app.handlers.load_pre.append(stop_on_file_load)


def unregister() -> None:
    if stop_on_file_load in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(stop_on_file_load)
    stylize_session.shutdown()
    _unregister_classes()
