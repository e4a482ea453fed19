"""install.py's choices: which torch build, where the worker environment goes, what the add-on zip holds."""

import zipfile

import install


def test_torch_spec_overrides_everything():
    assert install.torch_install_args("torch==2.13.0", cuda=True) == ["torch==2.13.0"]


def test_cuda_machines_get_the_cuda_index():
    args = install.torch_install_args(None, cuda=True)
    assert args[0] == "torch" and install.CUDA_TORCH_INDEX in args


def test_cpu_machines_get_a_pinned_cpu_build(monkeypatch):
    monkeypatch.setattr(install.sys, "platform", "linux")
    args = install.torch_install_args(None, cuda=False)
    assert args[0].startswith("torch==") and args[1:] == ["--extra-index-url", install.CPU_TORCH_INDEX]


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
