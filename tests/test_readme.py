"""The README stays true: its two commands exist, every setting is documented, CI runs the test command."""

from __future__ import annotations

from pathlib import Path

from safeguarding.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_every_setting_is_in_the_readme():
    for field in Settings.model_fields.values():
        name = field.validation_alias.choices[0]
        assert f"| `{name}` |" in README, f"{name} is not in the README's settings table"


def test_the_two_commands_exist_and_ci_runs_the_test_command():
    assert "./scripts/up.sh" in README and "./scripts/test.sh" in README
    for script in ("scripts/up.sh", "scripts/test.sh", ".ci/run"):
        path = ROOT / script
        assert path.exists() and path.stat().st_mode & 0o111, f"{script} is missing or not executable"
    assert "set -euo pipefail" in (ROOT / ".ci/run").read_text()
    assert "scripts/test.sh" in (ROOT / ".ci/run").read_text()


def test_the_architecture_table_names_real_places():
    for place in ("safeguarding/", "workflows/", "activities/", "web/", "schemas/", "sgflow/", "tests/",
                  "benchmarks/", "docs/production.md", "docker-compose.yml", "Dockerfile"):
        assert (ROOT / place.rstrip("/")).exists(), place
        assert place in README
