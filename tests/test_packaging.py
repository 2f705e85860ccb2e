"""The wheel installs ``otel_tokenkpi.instrumentors`` and never a top-level ``instrumentors``.

How the test works, and why:

* Build: ``python -m pip wheel --no-deps -w OUT COPY`` on a copy of the repository in a tmp
  dir. The copy keeps setuptools' ``build/`` and ``*.egg-info`` out of the work tree (and
  away from a concurrent editable install). pip is in every venv, and its default build
  isolation installs the backend that ``[build-system]`` asks for (setuptools>=77, needed for
  the PEP 639 ``license`` string) from PyPI; ``--no-build-isolation`` would instead depend on
  whatever setuptools the test venv happens to have (none on Python >= 3.12, too old on 3.11).
* Install: a plain ``python -m venv`` (without ``--system-site-packages``: the base interpreter
  may carry any number of unrelated packages) gets the wheel with ``--no-deps --no-index``.
  Its dependencies (opentelemetry, wrapt, tiktoken, openai...) come from the running test
  venv through a ``.pth`` line naming a "shadow" directory: symlinks to every entry of the
  test venv's site-packages EXCEPT this project (``otel_tokenkpi``, its dist-info, the
  ``__editable__*`` hooks, ``.pth`` files, any ``instrumentors``). The project can therefore
  only come from the wheel, the check needs no network, and it takes seconds, not minutes.
* Probe: the venv's python runs with ``-I`` (no cwd, no PYTHONPATH, no user site) from a tmp
  dir and reports as JSON what it imported and which entry points it sees.
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import site
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
GROUP = "opentelemetry_instrumentor"
EP_NAME = "tokenkpi_openai"
EP_VALUE = "otel_tokenkpi.instrumentors.openai:OpenAIInstrumentor"

PROBE = textwrap.dedent(
    f"""
    import importlib.metadata as md, json, site, sys
    try:
        dist = md.distribution("otel-tokenkpi")
    except md.PackageNotFoundError:
        print(json.dumps({{"installed": False}}))
        sys.exit()
    out = {{"installed": True, "site_packages": site.getsitepackages()}}
    out["direct_url"] = json.loads(dist.read_text("direct_url.json") or "{{}}")
    import otel_tokenkpi.instrumentors, otel_tokenkpi.instrumentors.openai as mod
    out["instrumentors_file"] = otel_tokenkpi.instrumentors.__file__
    out["openai_file"] = mod.__file__
    try:
        import instrumentors
        out["top_level_instrumentors"] = repr(instrumentors)
    except ModuleNotFoundError:
        out["top_level_instrumentors"] = None
    eps = [ep for ep in md.entry_points(group={GROUP!r}) if ep.name == {EP_NAME!r}]
    out["entry_points"] = [ep.value for ep in eps]
    out["loaded_class"] = eps[0].load().__name__ if eps else None
    print(json.dumps(out))
    """
)


def _run(cmd: list[str], cwd: Path, timeout: float = 600) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _probe(python: str | Path, cwd: Path) -> dict:
    lines = _run([str(python), "-I", "-c", PROBE], cwd=cwd).strip().splitlines()
    return json.loads(lines[-1])


def _is_project_entry(name: str) -> bool:
    low = name.lower().replace("-", "_")
    return (
        low == "otel_tokenkpi"
        or low.startswith(("otel_tokenkpi_", "otel_tokenkpi.", "__editable__"))
        or low in ("instrumentors", "__pycache__")
        or low.endswith(".pth")
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("wheel")
    src, out = base / "src", base / "out"
    ignore = shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "node_modules"
    )
    shutil.copytree(REPO, src, ignore=ignore)
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "-q", "-w", str(out), str(src)],
        base,
    )
    (whl,) = out.glob("otel_tokenkpi-*.whl")
    return whl


@pytest.fixture(scope="module")
def wheel_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("venv")
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], base)
    py = venv / "bin" / "python"
    _run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], base)

    shadow = base / "shadow"
    shadow.mkdir()
    for sp in site.getsitepackages():
        if not os.path.isdir(sp):
            continue
        for entry in sorted(os.listdir(sp)):
            if not _is_project_entry(entry) and not (shadow / entry).exists():
                (shadow / entry).symlink_to(Path(sp) / entry)
    site_dirs = _run([str(py), "-I", "-c", "import site; print(site.getsitepackages()[0])"], base)
    Path(site_dirs.strip(), "zz_test_deps.pth").write_text(f"{shadow}\n")
    return venv


def test_wheel_file_list(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "otel_tokenkpi/__init__.py" in names
    assert "otel_tokenkpi/instrumentors/__init__.py" in names
    assert "otel_tokenkpi/instrumentors/openai.py" in names
    assert not [n for n in names if n.startswith("instrumentors/")]
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"otel_tokenkpi"}, top


def test_wheel_entry_points(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        (ep_file,) = [n for n in zf.namelist() if n.endswith(".dist-info/entry_points.txt")]
        text = zf.read(ep_file).decode()
    parser = configparser.ConfigParser(delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    assert parser.has_section(GROUP), text
    assert parser[GROUP].get(EP_NAME) == EP_VALUE, text


def test_installed_wheel_imports_from_its_own_site_packages(wheel_venv: Path, tmp_path: Path) -> None:
    out = _probe(wheel_venv / "bin" / "python", tmp_path)
    assert out["installed"] and out["direct_url"].get("url", "").endswith(".whl"), out
    site_dir = Path(out["site_packages"][0]).resolve()
    assert site_dir.is_relative_to(wheel_venv.resolve()), site_dir
    assert Path(out["openai_file"]).resolve() == site_dir / "otel_tokenkpi" / "instrumentors" / "openai.py"
    assert out["top_level_instrumentors"] is None, out["top_level_instrumentors"]
    assert out["entry_points"] == [EP_VALUE]
    assert out["loaded_class"] == "OpenAIInstrumentor"
    assert not (site_dir / "instrumentors").exists()


def test_editable_install_maps_folder_to_subpackage(tmp_path: Path) -> None:
    """The dev install (``pip install -e .``) serves otel_tokenkpi.instrumentors from <repo>/instrumentors."""
    out = _probe(sys.executable, tmp_path)  # from a tmp dir, so the repo's own *.egg-info is not seen
    if not out["installed"]:
        pytest.skip("otel-tokenkpi is not installed in this interpreter (tests/run.sh installs it editable)")
    url, editable = out["direct_url"].get("url"), out["direct_url"].get("dir_info", {}).get("editable")
    if not editable or url != REPO.as_uri():
        pytest.skip(f"otel-tokenkpi is not installed editable from {REPO} (direct_url: {out['direct_url']})")
    assert Path(out["instrumentors_file"]).resolve() == REPO / "instrumentors" / "__init__.py"
    assert Path(out["openai_file"]).resolve() == REPO / "instrumentors" / "openai.py"
    assert out["top_level_instrumentors"] is None, out["top_level_instrumentors"]
    assert out["entry_points"] == [EP_VALUE]
    assert out["loaded_class"] == "OpenAIInstrumentor"
