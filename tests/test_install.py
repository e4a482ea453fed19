"""install.py's choices: which torch build, where the worker environment goes, what the add-on zip holds; its
--test checks and the README's two commands; and the --demo path run for real on the CPU."""

import importlib.metadata
import json
import subprocess
import sysconfig
import zipfile
from pathlib import Path

import pytest

import install
from core.demo import demo_scene
from interchange.ply import read_ply


def test_torch_spec_overrides_everything():
    assert install.torch_install_attempts("torch==2.13.0", cuda=True) == [["torch==2.13.0"]]


def test_cuda_machines_get_the_cuda_index():
    [args] = install.torch_install_attempts(None, cuda=True)
    assert args[0] == "torch" and install.CUDA_TORCH_INDEX in args


def test_cpu_machines_get_a_pinned_cpu_build_from_pips_own_sources_first(monkeypatch):
    monkeypatch.setattr(install.sys, "platform", "linux")
    own, index = install.torch_install_attempts(None, cuda=False)
    assert own == [install.CPU_TORCH_SPEC] and install.CPU_TORCH_SPEC.startswith("torch==")
    assert install.CPU_TORCH_SPEC.endswith("+cpu"), "PyPI's Linux build of the same version is the CUDA one"
    assert index == [install.CPU_TORCH_SPEC, "--extra-index-url", install.CPU_TORCH_INDEX]


def fake_pip(tmp_path, succeeds_when: str) -> tuple[list[str], Path]:
    """A stand-in for `python -m pip install` that logs its arguments and fails unless they hold a given word."""
    log = tmp_path / "pip.log"
    script = tmp_path / "pip.py"
    script.write_text(f"import sys\nopen({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
                      f"sys.exit(0 if {succeeds_when!r} in sys.argv else 1)\n")
    return [install.sys.executable, str(script)], log


def test_the_cpu_build_comes_from_the_pytorch_index_only_where_pips_own_sources_lack_it(monkeypatch, tmp_path):
    monkeypatch.setattr(install.sys, "platform", "linux")
    attempts = install.torch_install_attempts(None, cuda=False)
    pip, log = fake_pip(tmp_path, succeeds_when="--extra-index-url")
    install.install_torch(pip, attempts)
    assert log.read_text().splitlines() == [" ".join(attempt) for attempt in attempts]
    log.unlink()
    pip, log = fake_pip(tmp_path, succeeds_when=install.CPU_TORCH_SPEC)
    install.install_torch(pip, attempts)
    assert log.read_text().splitlines() == [install.CPU_TORCH_SPEC], "found locally: the index is never asked"
    pip, log = fake_pip(tmp_path, succeeds_when="nothing")
    with pytest.raises(SystemExit, match="failed: installing PyTorch"):
        install.install_torch(pip, attempts)


def test_venv_location_is_overridable(monkeypatch, tmp_path):
    monkeypatch.setenv("SOS_STYLIZER_VENV", str(tmp_path / "env"))
    assert install.default_venv() == tmp_path / "env"
    monkeypatch.delenv("SOS_STYLIZER_VENV")
    assert install.default_venv().name == "venv"


def test_addon_zip_holds_the_package_without_caches(tmp_path):
    names = zipfile.ZipFile(install.build_addon_zip(tmp_path)).namelist()
    assert "sos_stylizer/__init__.py" in names and "sos_stylizer/blender_manifest.toml" in names
    assert all(name.startswith("sos_stylizer/") for name in names)
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)


def test_addon_zip_bundles_the_shared_package_as_its_subpackage(tmp_path):
    """The add-on imports interchange relatively, so the zip must carry every one of its modules, unchanged."""
    archive = zipfile.ZipFile(install.build_addon_zip(tmp_path))
    shared = sorted(p.relative_to(install.SHARED_SOURCE).as_posix() for p in install.SHARED_SOURCE.glob("*.py"))
    assert "ply.py" in shared and "protocol.py" in shared
    for name in shared:
        assert archive.read(f"sos_stylizer/interchange/{name}") == (install.SHARED_SOURCE / name).read_bytes()
    assert "sos_stylizer/splats/objects.py" in archive.namelist()


def test_engine_package_ships_the_shared_package_and_not_plyfile():
    text = (install.ROOT / "pyproject.toml").read_text()
    assert 'packages = ["core", "interchange"]' in text and "plyfile" not in text
    assert not any("plyfile" in package for package in install.RUNTIME_PACKAGES)


def fake_python(path, version: str):
    """An executable that answers install.python_version's question like a Python of that version."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho {version}\n")
    path.chmod(0o755)
    return path


def test_python_313_is_found_under_pyenv_past_a_shim_that_does_not_run(monkeypatch, tmp_path):
    shims = tmp_path / "shims"
    shim = shims / "python3.13"
    shim.parent.mkdir()
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.13: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    fake_python(tmp_path / "pyenv" / "versions" / "3.13.0" / "bin" / "python", "3 13")
    newest = fake_python(tmp_path / "pyenv" / "versions" / "3.13.10" / "bin" / "python", "3 13")
    fake_python(tmp_path / "pyenv" / "versions" / "3.12.1" / "bin" / "python", "3 12")
    monkeypatch.setenv("PATH", str(shims))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    assert install.find_python((3, 13)) == newest
    assert install.find_python((3, 9)) is None


def test_the_bpy53_environment_sits_beside_the_worker_environment(monkeypatch, tmp_path, capsys):
    assert install.bpy53_venv(tmp_path / ".venv") == tmp_path / ".venv-bpy5.3"
    assert "bpy==5.3.0" in install.BPY53_PACKAGES and "torch" not in " ".join(install.BPY53_PACKAGES)
    monkeypatch.setattr(install, "find_python", lambda version: None)
    assert install.install_bpy53_tests(tmp_path / ".venv") is None
    assert "Python 3.13 not found" in capsys.readouterr().out
    assert not (tmp_path / ".venv-bpy5.3").exists()


def test_test_mode_is_the_development_setup_in_the_repository():
    args = install.parse_args(["--test"])
    assert args.dev and args.editable and args.venv == install.ROOT / ".venv"
    assert install.parse_args(["--test", "--venv", "/tmp/elsewhere"]).venv.as_posix() == "/tmp/elsewhere"
    plain = install.parse_args([])
    assert not (plain.dev or plain.editable or plain.demo) and plain.venv is None


def test_checks_cover_lint_and_both_blender_versions(tmp_path):
    python, bpy53 = tmp_path / "venv" / "bin" / "python", tmp_path / "bpy53" / "bin" / "python"
    names = [name for name, _, _ in install.check_commands(python, bpy53)]
    assert names == ["lint (ruff)", "tests (bpy 5.0.1)", "add-on tests again (bpy 5.3, Python 3.13)"]
    _, command, env = install.check_commands(python, bpy53)[2]
    assert command[0] == str(bpy53) and command[-2:] == ["tests/blender", "tests/addon_io"]
    assert env["SOS_TEST_WORKER_PYTHON"] == str(python)
    assert len(install.check_commands(python, None)) == 2


def test_every_check_runs_and_any_failure_fails_the_run(tmp_path, capsys):
    marker = tmp_path / "ran"
    fail = [install.sys.executable, "-c", "raise SystemExit(3)"]
    last = [install.sys.executable, "-c", f"open({str(marker)!r}, 'w')"]
    assert install.run_checks([("lint", fail, {}), ("tests", last, {})]) == 1
    assert marker.exists(), "a failed check must not hide the later ones"
    out = capsys.readouterr().out
    assert "lint: FAILED (exit status 3)" in out and "tests: passed" in out
    assert install.run_checks([("tests", last, {})]) == 0


def readme_first_commands() -> list[str]:
    """The commands of the README's first shell block, without their comments."""
    text = (install.ROOT / "README.md").read_text()
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.split("#", 1)[0].strip()]


def test_readme_starts_with_the_two_commands_and_ci_runs_the_second():
    assert readme_first_commands() == ["python3 install.py --demo", "python3 install.py --test"]
    ci = [line for line in (install.ROOT / ".ci" / "run").read_text().splitlines()
          if line and not line.startswith("#")]
    assert ci[-1] == "python3 install.py --test"


@pytest.mark.slow
def test_demo_sets_up_a_worker_and_stylizes_the_demo_scene(monkeypatch, tmp_path, capsys):
    """install.py --demo's steps for real on the CPU: a new venv, pip, the engine's install, its check, the settings
    file, the demo run and the closing lines. The new venv sees this environment's packages through a .pth file,
    so pip finds them installed and downloads nothing (the engine itself is built and installed, not editable)."""
    real_create_venv = install.create_venv

    def create_venv_seeing_our_packages(venv):
        python = real_create_venv(venv)
        site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()
        Path(site, "outer_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        return python

    monkeypatch.delenv("PYTHONPATH", raising=False)  # the new venv's own engine, not a development tree's
    monkeypatch.setattr(install, "create_venv", create_venv_seeing_our_packages)
    monkeypatch.setattr(install, "has_nvidia_gpu", lambda: False)
    monkeypatch.setattr(install, "user_data_dir", lambda: tmp_path / "user")
    build_addon_zip = install.build_addon_zip
    monkeypatch.setattr(install, "build_addon_zip", lambda: build_addon_zip(tmp_path / "dist"))  # not the user's
    monkeypatch.setattr(install, "DEMO_ARGUMENTS", ["--demo", "--iterations", "3", "--resolution", "48",
                                                    "--views", "3"])
    monkeypatch.setattr(install, "DEMO_OUTPUT", tmp_path / "out")
    venv = tmp_path / "venv"
    torch_spec = f"torch=={importlib.metadata.version('torch')}"  # the installed one: nothing to download
    assert install.main(["--demo", "--venv", str(venv), "--torch-spec", torch_spec]) == 0

    python = install.venv_python(venv)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["inputs"]["scene"] == "demo" and report["device"]["torch_device"] == "cpu"
    assert read_ply(tmp_path / "out" / "stylized.ply").count == demo_scene().count
    assert all(Path(path).is_file() for path in report["outputs"]["previews"])
    engine = subprocess.run([str(python), "-c", "import core; print(core.__file__)"], cwd=tmp_path,
                            capture_output=True, text=True, check=True).stdout
    assert Path(engine.strip()).resolve().is_relative_to(venv.resolve()), "the engine is installed into the new venv"
    settings = json.loads((tmp_path / "user" / install.SETTINGS_FILE).read_text())
    assert Path(settings["worker_python"]) == install.venv_python(venv.resolve())
    closing = capsys.readouterr().out.split("Demo done:", 1)[1]
    assert str(tmp_path / "out" / "stylized.ply") in closing
    assert str(tmp_path / "dist" / "sos_stylizer.zip") in closing
