"""One supported range per library, stated alike in the three places users and pip read it: the
instrumentor's ``instruments`` (what ``instrument()`` checks), the pyproject extra (what pip installs) and
the README's table (what users read). tests/matrix.sh tests each floor; this keeps the three from drifting."""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
ROOT = Path(__file__).resolve().parent.parent
# The instrumentor checks the distribution that holds the patched code; users install another one.
INSTALLED_AS = {"botocore": "boto3"}


def _extras_floors() -> dict[str, str]:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    floors: dict[str, str] = {}
    for name, requirements in extras.items():
        if name in ("test", "dev", "all"):
            continue
        for line in requirements:
            req = Requirement(line)
            (spec,) = req.specifier
            floors[req.name] = spec.version
    return floors


def _readme_floors() -> dict[str, str]:
    table = (ROOT / "README.md").read_text().split("## Supported libraries", 1)[1]
    return dict(re.findall(r"^\| `([\w-]+)` >= ([\d.]+)", table, flags=re.MULTILINE))


INSTRUMENTORS = {
    ep.name: ep for ep in entry_points(group="opentelemetry_instrumentor") if ep.name.startswith("tokenkpi_")
}


def _instrumentor_floor(name: str) -> tuple[str, str]:
    """(library users install, floor) of an instrumentor's one ``instruments`` requirement."""
    (dependency,) = INSTRUMENTORS[name].load()().instrumentation_dependencies()
    req = Requirement(dependency)
    (spec,) = req.specifier
    assert spec.operator == ">="
    return INSTALLED_AS.get(req.name, req.name), spec.version


@pytest.mark.parametrize("name", sorted(INSTRUMENTORS))
def test_instrumentor_extra_and_readme_state_the_same_floor(name: str) -> None:
    library, floor = _instrumentor_floor(name)
    assert Version(_extras_floors()[library]) == Version(floor)
    assert Version(_readme_floors()[library]) == Version(floor)


def test_the_readme_lists_exactly_the_instrumented_libraries() -> None:
    assert len(INSTRUMENTORS) == 9
    assert set(_readme_floors()) == {_instrumentor_floor(name)[0] for name in INSTRUMENTORS}
