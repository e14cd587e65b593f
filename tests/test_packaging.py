"""The wheel is what users install: it must carry the WGSL kernels and the widgets' front-end
bundle (a git-ignored build output), and work from a clean virtual environment."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
                   check=True, cwd=out)
    (path,) = out.glob("notebook_llm_webgpu-*.whl")
    return path


def test_wheel_holds_kernels_and_widget_bundle(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for bundle in ("chat.js", "picker.js", "widgets.css"):
        assert f"notebook_llm/static/{bundle}" in names
    kernels = {Path(n).name for n in names if n.startswith("notebook_llm/kernels/")}
    assert {"matvec.wgsl", "attention.wgsl", "sample.wgsl"} <= kernels
    assert len(kernels) == len(list((ROOT / "kernels").glob("*.wgsl")))
    assert not any("node_modules" in n or n.startswith("js/") for n in names)
    assert any(n.endswith("entry_points.txt") for n in names)


def test_wheel_installs_into_a_clean_venv_and_makes_widgets(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)], check=True)
    script = (
        "import notebook_llm\n"
        "from notebook_llm import ChatWidget, ModelPicker\n"
        "picker = ModelPicker()\n"
        "chat = ChatWidget(picker=picker)\n"
        "assert 'render' in picker._esm and 'render' in chat._esm  # the bundles' source, read from the wheel\n"
        "print(notebook_llm.__file__)\n"
        "print(repr(picker)); print(repr(chat)); print(len(picker.models))\n"
    )
    result = subprocess.run([str(python), "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    location, picker_repr, chat_repr, n_models = result.stdout.strip().splitlines()[-4:]
    assert str(env_dir) in location  # the installed wheel, not the source tree
    assert picker_repr.startswith("ModelPicker(") and "0x" not in picker_repr
    assert chat_repr.startswith("ChatWidget(") and "0x" not in chat_repr
    assert int(n_models) >= 40
