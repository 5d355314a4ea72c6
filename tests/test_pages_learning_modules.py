"""Issue 18.2: the everyday-learning pages are a package of modules, one concern each (``web/pages/learning/``).
Its router holds the same routes in the same order as the one module did, as plain routes (so the app, its route
checks and the security header checks see every one), and no module of it imports another (what they share is in
``web/views/``)."""

from __future__ import annotations

import ast
from pathlib import Path

from fastapi.routing import APIRoute

ROOT = Path(__file__).resolve().parents[1]
ROUTES = [("GET", "/learning/new"), ("POST", "/learning/new"), ("GET", "/learning/recorded/{case_id}"),
          ("GET", "/learning"), ("GET", "/learning/events/{case_id}/actions/new"),
          ("POST", "/learning/events/{case_id}/actions/new"), ("GET", "/learning/events/{case_id}/triage"),
          ("POST", "/learning/events/{case_id}/triage"), ("GET", "/learning/themes"), ("GET", "/national/learning"),
          ("GET", "/national/learning.csv")]


def test_the_learning_router_has_its_routes_in_order():
    from web.pages import learning

    assert all(isinstance(route, APIRoute) for route in learning.router.routes)
    assert [(method, route.path) for route in learning.router.routes for method in sorted(route.methods)] == ROUTES


def test_no_learning_page_module_imports_another_page():
    package = ROOT / "web" / "pages" / "learning"
    for path in sorted(package.glob("*.py")):
        if path.name == "__init__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.level == 0 and not node.module.startswith("web.pages."), (path.name, node.module)
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("web.pages.") for a in node.names), path.name
