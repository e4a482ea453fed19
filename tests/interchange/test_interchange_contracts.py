"""interchange's small contracts: atomic writes and file modes, the user folder, the orbit ring, the protocol."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

from interchange import orbit, protocol, user_folder
from interchange.atomic import atomic_write, write_atomically
from interchange.cameras import look_at_rotation
from interchange.errors import InputError


@pytest.fixture
def usual_umask():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_new_files_are_0644_like_any_saved_file_and_replaced_files_keep_their_mode(tmp_path: Path,
                                                                                    usual_umask) -> None:
    with atomic_write(tmp_path / "a.json", "w") as stream:
        stream.write("{}")
    write_atomically(tmp_path / "b.bin", lambda stream: stream.write(b"\0"))
    assert {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()} == {"a.json": 0o644, "b.bin": 0o644}
    (tmp_path / "a.json").chmod(0o600)
    with atomic_write(tmp_path / "a.json", "w") as stream:
        stream.write("[]")
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o600 and (tmp_path / "a.json").read_text() == "[]"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(tmp_path / "a.txt", "w") as stream:
            stream.write("half")
            raise RuntimeError("disk full")
    assert os.listdir(tmp_path) == ["a.txt"] and (tmp_path / "a.txt").read_text() == "old"


def test_user_folder_follows_the_platform_convention_and_the_venv_override(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(user_folder.sys, "platform", "linux")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.delenv(user_folder.VENV_ENV_VAR, raising=False)
    assert user_folder.user_data_dir() == tmp_path / "sos-stylizer"
    assert user_folder.venv_python(user_folder.default_venv()) == tmp_path / "sos-stylizer" / "venv" / "bin" / "python"
    monkeypatch.setenv(user_folder.VENV_ENV_VAR, str(tmp_path / "elsewhere"))
    assert user_folder.default_venv() == tmp_path / "elsewhere"
    monkeypatch.setattr(user_folder.sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert user_folder.user_data_dir() == tmp_path / "local" / "sos-stylizer"
    assert user_folder.venv_python(Path("v")) == Path("v") / "Scripts" / "python.exe"


def test_orbit_ring_frames_the_dense_part_from_every_camera() -> None:
    rng = np.random.default_rng(0)
    means = np.concatenate([rng.normal(size=(900, 3)), rng.normal(50.0, 1.0, size=(100, 3))])  # far transparent
    logits = np.concatenate([np.full(900, 2.0), np.full(100, -2.0)])
    centre, radius = orbit.framing_sphere(means, logits)
    assert np.linalg.norm(centre) < 0.2 and 1.5 < radius < 3.5
    distance = orbit.framing_distance(radius, 64, 48)
    up = np.array([0.0, -1.0, 0.0])
    positions = orbit.ring_positions(centre, distance, up, 7)
    assert len(positions) == 7
    for position in positions:
        assert math.isclose(np.linalg.norm(position - centre), distance)
        forward = look_at_rotation(position, centre, up)[:, 2]
        half_short = math.atan(24 / orbit.focal_for_fov(64, 48))  # half the view angle across the short side
        assert half_short / 1.1 < math.asin(radius / distance) < half_short  # fits, with the small margin
        np.testing.assert_allclose(forward, (centre - position) / distance, atol=1e-12)
    elevations = sorted({round(math.degrees(math.asin(np.dot(p - centre, up) / distance)), 6) for p in positions})
    assert elevations == list(orbit.ELEVATIONS_DEG)


def test_orbit_refuses_a_scene_without_finite_positions() -> None:
    with pytest.raises(InputError, match="no Gaussian with a finite position"):
        orbit.framing_sphere(np.full((3, 3), np.nan))


def test_protocol_commands_and_event_fields() -> None:
    assert protocol.job_command("py") == ["py", "-m", "core", "@args.txt", "--json-progress", "--cancel-file",
                                          "cancel"]
    assert protocol.worker_command("py", "--check") == ["py", "-m", "core.worker", "--check"]
    assert protocol.missing_fields({"event": "preview", "iteration": 3}) == ["path"]
    assert protocol.missing_fields({"event": "from_the_future"}) == []
    assert {"engine_version", "protocol"} <= set(protocol.CHECK_FIELDS)
    assert len({protocol.EXIT_DONE, protocol.EXIT_BAD_INPUT, protocol.EXIT_OUT_OF_MEMORY, protocol.EXIT_CANCELLED}) == 4
