"""Issue 18, point 3: the layers. The service layer (``safeguarding``), the workflows and their activities never
import the web app (``web``), nor does the seed; so the seed, the worker and the CLI run without it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOWER = ["safeguarding", "workflows", "activities"]


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def sources(*packages: str) -> list[Path]:
    return sorted(p for package in packages for p in (ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", [*sources(*LOWER), ROOT / "sgflow" / "seed.py"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_lower_layers_never_import_web(path: Path):
    web = sorted(m for m in imported_modules(path) if m == "web" or m.startswith("web."))
    assert not web, f"{path.relative_to(ROOT)} imports {web}"


def test_web_cases_is_gone():
    """The service layer moved to safeguarding/ (intake, case_commands, case_queries, case_access, refusals)."""
    assert not (ROOT / "web" / "cases.py").exists()


def _web_modules() -> list[Path]:
    return sorted((ROOT / "web").rglob("*.py"))


def test_no_web_module_imports_private_helpers():
    """No module imports another's ``_private`` names."""
    for path in _web_modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path.relative_to(ROOT)} imports {private} from {node.module}"


def test_routes_take_the_app_objects_from_web_deps():
    """No page module keeps its own ``_engine`` (routes take ``web.deps.DbEngine``)."""
    for path in _web_modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
        if path.name != "deps.py":
            assert "_engine" not in defined, f"{path.relative_to(ROOT)} defines _engine"


def _page_module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _page_modules() -> set[str]:
    """Every page module, packages' included (web.pages.case, web.pages.learning, web.pages.learning.events):
    not ``web.pages`` itself, which holds what pages share."""
    return {_page_module_name(p) for p in (ROOT / "web" / "pages").rglob("*.py")} - {"web.pages"}


def page_modules_imported(module: str, source: str, pages: set[str]) -> set[str]:
    """The page modules ``module`` (a dotted name) imports in ``source``, other than itself; a package's own
    submodules are allowed in its ``__init__`` (the package gathers their routers)."""
    is_package = any(p.startswith(module + ".") for p in pages)
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            named = {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package (a package's __init__ is its own package)
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[:len(package) - (node.level - 1)]
                base = ".".join([*package, *([base] if base else [])])
            named = {base} | {f"{base}.{alias.name}" for alias in node.names}
        else:
            continue
        found |= {n for n in named & pages
                  if n != module and not (is_package and n.startswith(module + "."))}
    return found


def test_pages_import_no_other_page():
    """A page module imports what pages share from ``web.views``, ``web.deps``, ``web.pages`` and the service layer,
    never another page module: in web/pages/ and in its packages (web/pages/learning/) alike."""
    pages = _page_modules()
    assert {"web.pages.case", "web.pages.learning", "web.pages.learning.events"} <= pages
    # the check itself catches an import of another page module, however it is written
    for module, source in [("web.pages.learning.actions", "from web.pages.learning import events"),
                           ("web.pages.learning.actions", "from . import events"),
                           ("web.pages.learning.actions", "from web.pages import learning"),
                           ("web.pages.learning.actions", "from .events import shown"),
                           ("web.pages.learning.themes", "import web.pages.case"),
                           ("web.pages.case", "from web.pages.learning.events import x")]:
        assert page_modules_imported(module, source, pages), (module, source)
    assert not page_modules_imported("web.pages.learning", "from web.pages.learning import events", pages)
    assert not page_modules_imported("web.pages.case", "from web.pages import page_context", pages)
    for path in sorted((ROOT / "web" / "pages").rglob("*.py")):
        module = _page_module_name(path)
        found = page_modules_imported(module, path.read_text(encoding="utf-8"), pages)
        assert not found, f"{path.relative_to(ROOT)} imports the page module(s) {sorted(found)}"


def _route_modules() -> set[str]:
    """The modules that declare routes (a top-level ``router``), as dotted names: web/api/*, web/pages/*."""
    found = set()
    for path in _web_modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "router" for t in n.targets)
               for n in tree.body):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


def test_views_import_no_route_module():
    """What pages share (``web.views``) imports models and helpers, never a module of routes (``web.api.cases``,
    a page module): a route module imports views, not the other way round."""
    routes = _route_modules()
    assert "web.api.cases" in routes and "web.pages.learning" in routes  # the check sees them
    for path in sorted((ROOT / "web" / "views").rglob("*.py")):
        found = sorted(imported_modules(path) & routes)
        assert not found, f"{path.relative_to(ROOT)} imports the route module(s) {found}"


def test_tests_import_no_other_test_module():
    """Shared test helpers live in tests/support/; no test module, helper or history recorder imports a test
    module."""
    for path in sorted((ROOT / "tests").rglob("*.py")):
        test_modules = sorted(m for m in imported_modules(path) if m.startswith("tests.test_"))
        assert not test_modules, f"{path.relative_to(ROOT)} imports {test_modules}"
