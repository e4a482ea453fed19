"""Import boundaries, read from the source (plain Python: no bpy, no torch needed).

- The shared package interchange/ imports only numpy and the standard library (no torch, no bpy, no core).
- The Blender add-on imports only bpy, numpy and the standard library (torch must never load inside Blender),
  in every module of every subpackage; the shared package reaches it as its subpackage ``interchange`` (the
  add-on zip bundles it, install.build_addon_zip).
- Inside the add-on, imports run downward only: ui/ over scene/, stylize/ and render/, over cameras/ and worker/,
  over splats/, over the base modules, over io/, over interchange. Domain code never imports an operator or panel
  module.
- The add-on's io/ layer never reaches bpy: its modules import only numpy, the standard library, interchange and
  each other, so nothing it imports, directly or through another module, loads bpy (tests/addon_io/ runs it
  without bpy).
- The engine never imports bpy or the add-on, and every engine module it imports exists in this tree.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
ADDON = REPO_ROOT / "blender_addon"
STDLIB = set(sys.stdlib_module_names)
ADDON_ALLOWED = {"bpy", "bpy_extras", "numpy"} | STDLIB
# Layer of each add-on subpackage (top-level modules are the base, layer 0). A module may import its own
# subpackage and lower layers; equal layers stay independent of each other.
ADDON_LAYERS = {"interchange": -2, "io": -1, "splats": 1, "cameras": 2, "worker": 2, "render": 3, "scene": 3,
                "stylize": 3, "ui": 4}
IO_LAYER = ADDON / "io"
IO_ALLOWED = {"numpy"} | STDLIB
BLENDER_MODULES = {"bpy", "bpy_extras", "mathutils", "gpu", "bmesh", "idprop"}
SHARED = REPO_ROOT / "interchange"
SHARED_ALLOWED = {"numpy"} | STDLIB
ENGINE_PACKAGES = ("core", "interchange")


def python_files(folder: Path) -> list[Path]:
    """Every .py file under folder, subpackages included."""
    files = sorted(folder.rglob("*.py"))
    assert files, f"no Python files under {folder}"
    return files


def absolute_imports(source: Path) -> list[str]:
    """Top-level names of the absolute imports in source."""
    roots = []
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots += [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            roots.append(node.module.split(".")[0])
    return roots


def relative_targets(source: Path, package_root: Path) -> list[tuple[str, ...]]:
    """Module paths (relative to package_root) that source's relative imports reach, e.g. ('splats', 'objects')."""
    own_package = source.relative_to(package_root).parent.parts
    targets = []
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            base = own_package[:len(own_package) - (node.level - 1)]
            module = tuple(node.module.split(".")) if node.module else ()
            if module:
                targets.append(base + module)
            else:
                targets += [base + (alias.name,) for alias in node.names]
    return targets


def upward_imports(source: Path, package_root: Path) -> list[str]:
    """The relative imports of source that reach its own layer's neighbours or a higher layer."""
    parts = source.relative_to(package_root).with_suffix("").parts
    if parts == ("__init__",):
        return []  # the add-on's entry point registers the ui modules
    own = parts[0] if len(parts) > 1 else None
    own_layer = ADDON_LAYERS.get(own, 0)
    return [f"{'.'.join(target)} (layer {ADDON_LAYERS.get(target[0], 0)} >= {own_layer})"
            for target in relative_targets(source, package_root)
            if target[0] != own and ADDON_LAYERS.get(target[0], 0) >= own_layer]


@pytest.mark.parametrize("source", python_files(ADDON), ids=lambda p: str(p.relative_to(ADDON)))
def test_addon_imports_only_bpy_numpy_and_the_standard_library(source: Path) -> None:
    roots = set(absolute_imports(source))
    assert roots <= ADDON_ALLOWED, f"{source.relative_to(REPO_ROOT)} imports {sorted(roots - ADDON_ALLOWED)}"


@pytest.mark.parametrize("source", python_files(ADDON), ids=lambda p: str(p.relative_to(ADDON)))
def test_addon_imports_run_downward(source: Path) -> None:
    assert upward_imports(source, ADDON) == [], f"{source.relative_to(REPO_ROOT)} imports upward"


def test_the_direction_check_reports_upward_and_sideways_imports(tmp_path: Path) -> None:
    module = tmp_path / "stylize" / "bad.py"
    module.parent.mkdir()
    module.write_text("from ..ui.export_ops import export_splat\nfrom ..render import view\nfrom . import job\n"
                      "from ..splats.objects import SPLAT_KEY\nfrom ..errors import SplatInputError\n")
    assert upward_imports(module, tmp_path) == ["ui.export_ops (layer 4 >= 3)", "render (layer 3 >= 3)"]


@pytest.mark.parametrize("source", python_files(IO_LAYER), ids=lambda p: p.name)
def test_the_io_layer_imports_only_numpy_the_standard_library_and_interchange(source: Path) -> None:
    roots = set(absolute_imports(source))
    assert roots <= IO_ALLOWED, f"{source.relative_to(REPO_ROOT)} imports {sorted(roots - IO_ALLOWED)}"
    reached = {target[0] for target in relative_targets(source, ADDON)}
    assert reached <= {"io", "interchange"}, f"{source.relative_to(REPO_ROOT)} imports add-on modules {reached}"


def reachable_sources(start: Path, addon: Path = ADDON, shared: Path = SHARED) -> set[Path]:
    """start and every add-on or interchange source file its relative imports load, transitively: the modules
    named (``from .x import y``: x, and y where it is a submodule) and the packages above them inside the add-on
    (the add-on's own __init__, which runs before any of its modules, aside). The add-on's interchange
    subpackage is the shared package's folder, as the zip lays it out."""
    seen, todo = set(), [start]
    while todo:
        source = todo.pop()
        if source in seen:
            continue
        seen.add(source)
        root = shared if source.is_relative_to(shared) else addon
        todo += [path for path in imported_files(source, root, addon, shared) if path not in seen]
    return seen


def imported_files(source: Path, root: Path, addon: Path, shared: Path) -> list[Path]:
    """The source files that source's relative imports load (see reachable_sources)."""
    own = source.relative_to(root).parent.parts
    files = []
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.ImportFrom) and node.level > 0):
            continue
        module = own[:len(own) - (node.level - 1)] + (tuple(node.module.split(".")) if node.module else ())
        for target in [module] + [module + (alias.name,) for alias in node.names]:
            folder, parts = (shared, target[1:]) if root == addon and target[:1] == ("interchange",) else (root, target)
            base = folder.joinpath(*parts)
            packages = [folder.joinpath(*parts[:i], "__init__.py") for i in range(1, len(parts))]
            files += [path for path in [base.with_suffix(".py"), base / "__init__.py", *packages] if path.is_file()]
    return files


@pytest.mark.parametrize("source", python_files(IO_LAYER), ids=lambda p: p.name)
def test_nothing_the_io_layer_imports_reaches_blender(source: Path) -> None:
    """The closure of the io module's imports (io, interchange) imports no Blender module anywhere."""
    for reached in reachable_sources(source):
        blender = set(absolute_imports(reached)) & BLENDER_MODULES
        assert not blender, f"{source.relative_to(REPO_ROOT)} reaches {reached.relative_to(REPO_ROOT)}, " \
                            f"which imports {sorted(blender)}"


def test_the_reach_check_follows_imports_into_other_modules(tmp_path: Path) -> None:
    """A bpy import two modules away is found, also behind `from package import module`."""
    (tmp_path / "io").mkdir()
    (tmp_path / "io" / "a.py").write_text("from .b import thing\n")
    (tmp_path / "io" / "b.py").write_text("from ..splats import objects\nthing = objects.SPLAT_KEY\n")
    (tmp_path / "splats").mkdir()
    (tmp_path / "splats" / "objects.py").write_text("import bpy\nSPLAT_KEY = 'k'\n")
    reached = reachable_sources(tmp_path / "io" / "a.py", tmp_path, tmp_path / "interchange")
    assert {p.relative_to(tmp_path).as_posix() for p in reached} == {"io/a.py", "io/b.py", "splats/objects.py"}


@pytest.mark.parametrize("source", python_files(REPO_ROOT / "core"), ids=lambda p: p.name)
def test_engine_never_imports_blender_or_the_addon(source: Path) -> None:
    roots = set(absolute_imports(source))
    assert not roots & {"bpy", "bpy_extras", "blender_addon"}, f"{source.name} imports {sorted(roots)}"


@pytest.mark.parametrize("source", python_files(SHARED), ids=lambda p: p.name)
def test_shared_package_imports_only_numpy_and_the_standard_library(source: Path) -> None:
    roots = set(absolute_imports(source))
    assert roots <= SHARED_ALLOWED, f"{source.relative_to(REPO_ROOT)} imports {sorted(roots - SHARED_ALLOWED)}"
    levels = {node.level for node in ast.walk(ast.parse(source.read_text(encoding="utf-8")))
              if isinstance(node, ast.ImportFrom) and node.level}
    assert levels <= {1}, f"{source.name} reaches outside the package"  # the package is flat


def test_shared_standard_library_modules_import_without_numpy() -> None:
    """install.py runs before numpy exists: the modules it imports use the standard library alone."""
    for name in ("atomic", "user_folder", "errors", "__init__"):
        assert set(absolute_imports(SHARED / f"{name}.py")) <= STDLIB, name


def engine_modules(source: Path) -> list[str]:
    """Dotted names of the core and interchange modules that source imports (from X import Y: X.Y or X)."""
    names = []
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module.split(".")[0] in ENGINE_PACKAGES:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names if a.name.split(".")[0] in ENGINE_PACKAGES]
    return names


@pytest.mark.parametrize("source", sorted(REPO_ROOT.glob("*.py")) + python_files(REPO_ROOT / "core")
                         + python_files(REPO_ROOT / "tests") + python_files(REPO_ROOT / "bench"),
                         ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_imported_engine_modules_exist_in_this_tree(source: Path) -> None:
    """A module removed from core/ (now in interchange/) must not be imported anywhere: an installed copy of an
    older engine elsewhere on the path would otherwise answer the import silently."""
    for name in engine_modules(source):
        path = REPO_ROOT.joinpath(*name.split("."))
        assert path.with_suffix(".py").is_file() or (path / "__init__.py").is_file(), \
            f"{source.relative_to(REPO_ROOT)} imports {name}, which this tree does not have"


def module_level_imports(source: Path) -> list[str]:
    """Engine modules source imports when it is imported (type-only imports included; imports inside functions,
    which run later, left out)."""
    names = []
    for statement in ast.parse(source.read_text(encoding="utf-8")).body:
        for node in ast.walk(statement):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                break
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module.split(".")[0] == "core":
                names += [f"{node.module}.{a.name}" for a in node.names] + [node.module]
            elif isinstance(node, ast.Import):
                names += [a.name for a in node.names if a.name.split(".")[0] == "core"]
    modules = {path.stem for path in (REPO_ROOT / "core").glob("*.py")}
    return sorted({name for name in names if name.split(".")[-1] in modules and name != "core"})


def test_no_import_cycle_in_the_engine() -> None:
    """core's modules import each other one way only (type-only imports count: they tie the modules as much)."""
    graph = {f"core.{path.stem}": module_level_imports(path) for path in (REPO_ROOT / "core").glob("*.py")
             if path.stem != "__init__"}
    graph = {module: [m for m in targets if m in graph and m != module] for module, targets in graph.items()}

    def cycle_from(module: str, path: tuple[str, ...]) -> tuple[str, ...] | None:
        for target in graph[module]:
            if target in path:
                return (*path[path.index(target):], target)
            found = cycle_from(target, (*path, target))
            if found:
                return found
        return None

    cycles = [cycle for module in graph if (cycle := cycle_from(module, (module,)))]
    assert not cycles, " -> ".join(cycles[0])
