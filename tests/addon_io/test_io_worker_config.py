"""Which Python runs the worker and what its self-check says (blender_addon/io/worker_config.py), without
Blender: the lookup after the add-on preference, the settings files, running and reading `--check`, and what
the add-on makes of its answer. (worker/config.py, the preference half, is tested in Blender.)"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from addon_package import load_addon

addon = load_addon()
config = addon.io.worker_config
InputError = addon.interchange.errors.InputError
protocol = addon.interchange.protocol
PROTOCOL = protocol.PROTOCOL_VERSION
CHECK_LINE = {"python": "/w/bin/python", "python_version": "3.12.1", "torch": "2.5.0", "cuda": True,
              "device": "H100", "gpu_count": 1, "gpu_names": ["H100"], "gsplat": "1.5.3", "vgg_weights": "/w/vgg.pth",
              "renderer": "gsplat", "engine_version": "0.1.0", "protocol": PROTOCOL}  # as --check prints it
CHECK = protocol.parse_check(CHECK_LINE)


def check_without(*names: str, **values: object) -> object:
    """The check of an engine that reports none of ``names`` (engines from before they existed), with ``values``."""
    return protocol.parse_check({key: value for key, value in CHECK_LINE.items() if key not in names} | values)


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(the add-on folder, the per-user folder), both empty, with no worker named in the environment."""
    addon_folder, data_home = tmp_path / "addon", tmp_path / "data"
    addon_folder.mkdir()
    monkeypatch.setattr(config, "ADDON_FOLDER", addon_folder)
    monkeypatch.setenv("XDG_DATA_HOME", str(data_home))
    monkeypatch.delenv("SOS_STYLIZER_PYTHON", raising=False)
    monkeypatch.delenv("SOS_STYLIZER_VENV", raising=False)
    return addon_folder, data_home / "sos-stylizer"


def write_settings(folder: Path, python: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sos_worker.json"
    path.write_text(json.dumps({"worker_python": python}))
    return path


def test_the_preference_then_the_environment_then_the_settings_files_then_the_default(
        places: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    addon_folder, user_folder = places
    with pytest.raises(InputError, match=r"^No worker Python is configured: set the worker Python in the add-on "
                                         r"preferences, or run python install.py; without saved preferences"):
        config.find_python()
    default = user_folder / "venv" / "bin" / "python"
    default.parent.mkdir(parents=True)
    default.write_text("")
    assert config.find_python() == (str(default), "install.py's default environment")
    in_user_folder = write_settings(user_folder, "/user/python")
    assert config.find_python() == ("/user/python", str(in_user_folder))
    beside_addon = write_settings(addon_folder, "/beside/python")
    assert config.find_python() == ("/beside/python", str(beside_addon))
    monkeypatch.setenv("SOS_STYLIZER_PYTHON", "/env/python")
    assert config.find_python() == ("/env/python", "SOS_STYLIZER_PYTHON")
    assert config.find_python("/prefs/python") == ("/prefs/python", "the add-on preferences")


@pytest.mark.parametrize("content", ["not json", "[1, 2]", json.dumps({"worker_python": ""}),
                                     json.dumps({"worker_python": 3})])
def test_an_unusable_settings_file_is_passed_over(places: tuple[Path, Path], content: str) -> None:
    addon_folder, user_folder = places
    (addon_folder / "sos_worker.json").write_text(content)
    found = write_settings(user_folder, "/user/python")
    assert config.find_python() == ("/user/python", str(found))


def test_a_named_python_that_is_missing_says_which_setting_to_correct(places: tuple[Path, Path]) -> None:
    addon_folder, _ = places
    settings = write_settings(addon_folder, "/gone/python")
    with pytest.raises(InputError, match=rf"^Worker Python not found: /gone/python \(from {settings}\); correct "
                                         rf"worker_python in {settings}, or run python install.py$"):
        config.existing_python(*config.find_python())
    with pytest.raises(InputError, match=r"\(from SOS_STYLIZER_PYTHON\); set SOS_STYLIZER_PYTHON to the worker's "
                                         r"Python on this machine$"):
        config.existing_python("/gone/python", "SOS_STYLIZER_PYTHON")
    assert config.existing_python(str(settings), "the add-on preferences") == str(settings)


def test_the_check_is_the_last_line_the_worker_prints_and_is_cached(fake_python: Callable, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    python = str(fake_python(f"""\
        assert sys.argv[1:] == ["-m", "core.worker", "--check"], sys.argv
        open({str(runs)!r}, "a").write("run\\n")
        print("loading torch...")
        print({json.dumps(CHECK_LINE)!r})
        """))
    assert config.cached_check(python) is None
    assert config.check_worker(python) == CHECK
    assert config.check_worker(python) == CHECK and runs.read_text() == "run\n"  # cached
    assert config.cached_check(python) == CHECK
    config.check_worker(python, refresh=True)
    assert runs.read_text() == "run\nrun\n"


@pytest.mark.parametrize("body, message", [
    ("sys.stderr.write('Traceback...\\nModuleNotFoundError: No module named torch\\n'); sys.exit(1)",
     r"cannot run the engine \(ModuleNotFoundError: No module named torch\); run python install.py to install"),
    ("sys.exit(0)", r"cannot run the engine \(no error message\)"),
    ("print('{not json')", r"gave an unreadable check: \{not json$"),
    (f"print({json.dumps(json.dumps({**CHECK_LINE, 'protocol': True}))})",
     r"gave a check this add-on does not understand \(worker check: protocol has the wrong type \(True\)\); run "
     "python install.py again"),
    (f"print({json.dumps(json.dumps({k: v for k, v in CHECK_LINE.items() if k != 'cuda'}))})",
     r"gave a check this add-on does not understand \(worker check: missing cuda\); run python install.py again"),
])
def test_a_check_that_fails_says_what_the_worker_said(fake_python: Callable, body: str, message: str) -> None:
    python = str(fake_python(body))
    with pytest.raises(InputError, match=rf"^The worker Python {python} {message}"):
        config.run_check(python)


def test_a_python_that_cannot_run_is_named_with_the_fix(tmp_path: Path) -> None:
    not_executable = tmp_path / "python"
    not_executable.write_text("")
    with pytest.raises(InputError, match=rf"^Cannot run the worker Python {not_executable}: Permission denied; set "
                                         "the worker Python in the add-on preferences, or run python install.py$"):
        config.run_check(str(not_executable))


def test_describe_check_gives_versions_device_and_gsplat_in_one_line() -> None:
    assert config.describe_check(CHECK) == (f"engine 0.1.0, protocol {PROTOCOL}, Python 3.12.1, torch 2.5.0, "
                                            "CUDA GPU H100, gsplat 1.5.3")
    several = replace(CHECK, gpu_count=4, gpu_names=("H100", "A100", "H100", "H100"))
    assert "4 CUDA GPUs (A100, H100)" in config.describe_check(several)
    cpu = check_without("engine_version", "protocol", gsplat=None, cuda=False)
    assert config.describe_check(cpu) == (
        "engine (version unknown), protocol 0, Python 3.12.1, torch 2.5.0, no CUDA GPU (CPU only), gsplat missing")


@pytest.mark.parametrize("version, says", [(None, "older"), (0, "older"), (PROTOCOL + 1, "newer")])
def test_a_worker_of_another_protocol_is_refused_with_how_to_update(version: int | None, says: str) -> None:
    info = replace(CHECK, protocol=version) if version is not None else check_without("protocol",
                                                                                       engine_version="0.0.9")
    problem = config.protocol_problem(info)
    assert problem.startswith(f"The worker's engine {info.engine_version} is {says} than this add-on")
    assert "run python install.py again" in problem and config.check_problems(info)[0] == problem
    with pytest.raises(InputError, match="run python install.py again"):
        config.require_compatible(info)
    config.require_compatible(CHECK)


def test_check_problems_name_what_the_worker_lacks() -> None:
    assert config.check_problems(CHECK) == []
    problems = config.check_problems(replace(CHECK, vgg_weights=None, vgg_error="no VGG file", gsplat=None,
                                             gsplat_error="no CUDA toolkit"))
    assert problems == ["no VGG file; run python install.py",
                        "gsplat is not usable, so the GPU renders with the slower PyTorch rasterizer (no CUDA "
                        "toolkit); run python install.py"]
    assert config.check_problems(replace(CHECK, cuda=False))[-1].startswith("no CUDA GPU: the worker runs on the CPU")


@pytest.mark.parametrize("requested, cuda, device, warned", [
    ("auto", True, "auto", False), ("cuda", True, "cuda", False), ("cpu", True, "cpu", False),
    ("auto", False, "cpu", True), ("cuda", False, "cpu", True), ("cpu", False, "cpu", False)])
def test_the_device_falls_back_to_the_cpu_with_a_warning(requested: str, cuda: bool, device: str,
                                                         warned: bool) -> None:
    chosen, warning = config.effective_device(requested, replace(CHECK, cuda=cuda))
    assert chosen == device and (warning is not None) == warned


@pytest.mark.parametrize("requested, device, count, gpus, warning", [
    ("1", "cuda", 4, None, None),
    ("2", "cuda", 4, "2", None),
    ("all", "cuda", 4, "all", None),
    ("all", "cuda", 1, None, None),
    ("8", "cuda", 4, "4", "Stylize GPUs: 8 asked for in the preferences, but the worker sees 4 CUDA GPUs: using 4"),
    ("2", "cuda", 1, None, "Stylize GPUs: 2 asked for in the preferences, but the worker sees 1 CUDA GPU: using 1"),
    ("2", "cpu", 4, None, "Stylize GPUs: 2 GPUs asked for in the preferences, but the job runs on the CPU: one "
                          "process"),
    ("3", "cuda", None, "3", None),  # an engine that does not report its GPUs checks the request itself
])
def test_stylize_gpus_become_the_engines_gpus_argument(requested: str, device: str, count: int | None,
                                                       gpus: str | None, warning: str | None) -> None:
    info = replace(CHECK, gpu_count=count) if count is not None else check_without("gpu_count", "gpu_names")
    assert config.stylize_gpus(requested, device, info) == (gpus, warning)


def test_worker_processes_get_no_python_settings_of_blenders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONHOME", "/blender/python")
    monkeypatch.setenv("PYTHONPATH", "/blender/scripts")
    env = config.worker_environment()
    assert "PYTHONHOME" not in env and "PYTHONPATH" not in env and env["PYTHONUNBUFFERED"] == "1"
