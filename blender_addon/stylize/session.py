"""The stylization running in this Blender session: progress for the UI, a timer that keeps it moving, and
what happens when it ends (import the result, or report why not, and clean up).

One job at a time. In the UI a bpy.app.timers callback calls `tick()`; in background mode (scripts, render
farms) `run_to_end()` drives the same steps in a loop.
"""

from __future__ import annotations

import shutil
import textwrap
import time
from dataclasses import dataclass, field

import bpy
import bpy.utils.previews

from ..cameras.orbit import remove_orbit_rig
from ..errors import SplatInputError
from ..interchange.protocol import OUTPUT_FOLDER, SCENE_FILE
from ..io.job import Phase, StylizeJob
from ..io.job_files import prune_jobs
from .job_folder import jobs_root
from .result import import_result

TICK_S = 0.25
STATUS_REFRESH_S = 1.0
PREVIEW_KEY = "preview"
POPUP_CHARS = 70


@dataclass
class Message:
    """A report for the user: level is INFO, WARNING or ERROR."""

    level: str
    text: str


@dataclass
class Session:
    """The current job (if any), the last one, its messages and the live preview."""

    job: StylizeJob | None = None
    last_job: StylizeJob | None = None
    messages: list[Message] = field(default_factory=list)
    previews: bpy.utils.previews.ImagePreviewCollection | None = None
    preview_seen: int = 0
    status_time: float = 0.0

    def preview(self) -> bpy.types.ImagePreview | None:
        """The latest preview image of the engine, if any."""
        return self.previews.get(PREVIEW_KEY) if self.previews is not None else None


SESSION = Session()


def begin(job: StylizeJob) -> None:
    """Make job the current one."""
    SESSION.job = job
    SESSION.messages = [Message('WARNING', text) for text in job.target.warnings]
    SESSION.preview_seen = 0
    set_progress(0.0)


def watch() -> None:
    """Keep the current job moving from a timer (the UI stays responsive)."""
    if not bpy.app.timers.is_registered(tick):
        bpy.app.timers.register(tick, first_interval=TICK_S)


def tick() -> float | None:
    """Timer callback: advance the job; when it ends, conclude and show the outcome."""
    if SESSION.job is None:
        return None
    if step() is Phase.RUNNING:
        return TICK_S
    messages = conclude()
    push_undo()
    show(messages)
    return None


def step() -> Phase:
    """Advance the current job once: take its events, refresh progress and preview."""
    job = SESSION.job
    phase = job.advance()
    set_progress(job.progress.fraction, time.monotonic())
    if job.preview is not None and job.preview_count != SESSION.preview_seen and job.preview.is_file():
        SESSION.preview_seen = job.preview_count
        load_preview(str(job.preview))
    redraw()
    return phase


def run_to_end(poll_s: float = 0.05) -> list[Message]:
    """Drive the current job to its end without a timer (background mode) and conclude it."""
    while step() is Phase.RUNNING:
        time.sleep(poll_s)
    return conclude()


def cancel() -> bool:
    """Ask the current job to stop; False when none runs."""
    if SESSION.job is None:
        return False
    SESSION.job.request_cancel()
    return True


def stop_and_keep() -> bool:
    """Ask the current job to stop and bring back its result so far; False when none runs."""
    if SESSION.job is None:
        return False
    SESSION.job.request_keep()
    return True


def conclude() -> list[Message]:
    """End the current job: bring the result in, or undo what was made for it; keep only recent job folders."""
    job, SESSION.job, SESSION.last_job = SESSION.job, None, SESSION.job
    messages = SESSION.messages + outcome(job)
    SESSION.messages = messages
    set_progress(0.0)
    prune_jobs(jobs_root())
    redraw()
    return messages


def outcome(job: StylizeJob) -> list[Message]:
    """Messages for a finished job; imports the result when it succeeded."""
    source = find_object(job.target.object_uid)
    scene = bpy.data.scenes.get(job.target.scene_name)
    what = "Preview" if job.target.preview else "Stylize"
    if job.phase is Phase.DONE and source is not None and scene is not None:
        try:
            result = import_result(job.folder / OUTPUT_FOLDER, source, scene, job.folder / SCENE_FILE,
                                   job.target.preview)
        except (SplatInputError, OSError, RuntimeError, ValueError) as error:
            return [Message('ERROR', f"{what} finished but its result could not be imported: {error}")]
        return [Message('INFO', done_text(job, source.name, result.name))]
    if job.target.created_rig and source is not None:
        remove_orbit_rig(source)
    if job.phase is Phase.DONE:
        return [Message('ERROR', f"{what} finished but {job.target.object_name} or its scene was deleted "
                                 f"meanwhile; the result is in {job.folder / OUTPUT_FOLDER}")]
    shutil.rmtree(job.folder, ignore_errors=True)
    if job.phase is Phase.CANCELLED:
        nothing_kept = job.keep_requested and job.cancel_deadline is None
        kept = "; nothing was kept (no iteration had finished)" if nothing_kept else ""
        return [Message('INFO', f"{what} cancelled at iteration {job.progress.iteration}{kept}; the scene is "
                                "unchanged")]
    return [Message('ERROR', f"{what} failed: {job.error}; the scene is unchanged")]


def done_text(job: StylizeJob, source: str, result: str) -> str:
    """What a finished job says: what was made of what, and how long it took."""
    seconds = time.monotonic() - job.started
    if job.target.preview:
        return f"Previewed {source} as {result} in {seconds:.1f} s"
    if job.keep_requested:
        return (f"Stopped at iteration {job.progress.iteration} of {job.progress.total} and kept the result: "
                f"{source} as {result} in {seconds:.0f} s")
    return f"Stylized {source} as {result} in {seconds:.0f} s ({job.progress.iteration} iterations)"


def find_object(uid: int) -> bpy.types.Object | None:
    """The object with this session id, if it still exists."""
    return next((o for o in bpy.data.objects if o.session_uid == uid), None)


def shutdown() -> None:
    """Stop the current job without importing anything (Blender quits, a file is loaded, add-on disabled)."""
    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
    job, SESSION.job = SESSION.job, None
    if job is not None:
        job.kill()
        shutil.rmtree(job.folder, ignore_errors=True)
    if SESSION.previews is not None:
        bpy.utils.previews.remove(SESSION.previews)
        SESSION.previews = None


def load_preview(path: str) -> None:
    """Show the engine's latest preview image in the panel."""
    if SESSION.previews is None:
        SESSION.previews = bpy.utils.previews.new()
    if PREVIEW_KEY in SESSION.previews:
        del SESSION.previews[PREVIEW_KEY]
    SESSION.previews.load(PREVIEW_KEY, path, 'IMAGE', force_reload=True)


def set_progress(fraction: float, now: float | None = None) -> None:
    """The progress factor the status bar draws. Setting this property redraws whole windows (the status bar
    has no redraw call of its own), so it changes at most every STATUS_REFRESH_S seconds (now=None: at once)."""
    window_manager = bpy.context.window_manager
    if window_manager is None or not hasattr(window_manager, "sos_stylize_progress"):
        return
    if now is not None and now - SESSION.status_time < STATUS_REFRESH_S:
        return
    SESSION.status_time = time.monotonic() if now is None else now
    if window_manager.sos_stylize_progress != fraction:
        window_manager.sos_stylize_progress = fraction


def redraw() -> None:
    """Redraw the 3D viewports' sidebars, where the Stylize panel lives (not the viewports themselves)."""
    window_manager = bpy.context.window_manager
    for window in window_manager.windows if window_manager else []:
        for area in window.screen.areas:
            for region in area.regions if area.type == 'VIEW_3D' else []:
                if region.type == 'UI':
                    region.tag_redraw()


def push_undo() -> None:
    """An undo step for what a finished job changed, so Ctrl+Z does not reach past it."""
    if not bpy.app.background and bpy.ops.ed.undo_push.poll():
        bpy.ops.ed.undo_push(message="Stylize")


def show(messages: list[Message]) -> None:
    """Print the outcome, and pop it up where there is a window to show it in."""
    for message in messages:
        print(f"sos-stylizer: {message.level.lower()}: {message.text}")
    window_manager = bpy.context.window_manager
    if bpy.app.background or window_manager is None or not window_manager.windows:
        return
    worst = next((m for m in messages if m.level == 'ERROR'), messages[-1] if messages else None)
    if worst is None:
        return

    def draw(menu: bpy.types.Menu, _context: bpy.types.Context) -> None:
        for line in textwrap.wrap(worst.text, POPUP_CHARS):
            menu.layout.label(text=line)

    with bpy.context.temp_override(window=window_manager.windows[0]):
        window_manager.popup_menu(draw, title="Stylize", icon='ERROR' if worst.level == 'ERROR' else 'INFO')
