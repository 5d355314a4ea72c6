"""The `sgflow` command as a partnership lead or an operator uses it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import EXAMPLES


def sgflow(*args: str, tmp_path, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "SGFLOW_DATA_DIR": str(tmp_path / "data"),
                "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", **env}
    return subprocess.run([sys.executable, "-m", "sgflow", *args], env=full_env, capture_output=True, text=True,
                          timeout=60)


def test_help_reads_well(tmp_path):
    result = sgflow("--help", tmp_path=tmp_path)
    assert result.returncode == 0
    for command in ("up", "worker", "web", "db", "arrangements", "rebuild", "seed"):
        assert command in result.stdout


def test_validate_a_good_and_a_bad_file(tmp_path):
    good = sgflow("arrangements", "validate", str(EXAMPLES / "northmoor-and-eastholme.yaml"), tmp_path=tmp_path)
    assert good.returncode == 0 and "valid arrangements for ‘northmoor-and-eastholme’" in good.stdout
    doc = json.loads((EXAMPLES / "riverford-and-vale.json").read_text())
    doc["rapid_review"]["deadline"]["value"] = -1
    doc["calendar"]["extra_closure_days"] = [{"date": "2026-02-30", "reason": "x"}]
    bad_file = tmp_path / "bad.json"
    bad_file.write_text(json.dumps(doc))
    bad = sgflow("arrangements", "validate", str(bad_file), tmp_path=tmp_path)
    assert bad.returncode == 1
    lines = bad.stdout.strip().splitlines()
    assert len(lines) >= 2 and all(line.startswith("/") for line in lines)  # one error a line, path first
    assert any(line.startswith("/calendar/extra_closure_days/0/date:") for line in lines)
    assert any(line.startswith("/rapid_review/deadline/value:") for line in lines)
    assert "Traceback" not in bad.stderr


def test_a_missing_file_is_one_clear_line(tmp_path):
    result = sgflow("arrangements", "validate", str(tmp_path / "nope.json"), tmp_path=tmp_path)
    assert result.returncode == 1 and "cannot read" in result.stderr and "Traceback" not in result.stderr


def test_load_versions_and_diff(tmp_path):
    path = EXAMPLES / "riverford-and-vale.json"
    unmigrated = sgflow("arrangements", "load", "riverford-and-vale", str(path), tmp_path=tmp_path)
    assert unmigrated.returncode == 1 and "run `sgflow db upgrade` first" in unmigrated.stderr
    assert sgflow("db", "upgrade", tmp_path=tmp_path).returncode == 0
    first = sgflow("arrangements", "load", "riverford-and-vale", str(path), "--author", "bm", tmp_path=tmp_path)
    assert first.returncode == 0 and "version 1" in first.stdout
    same = sgflow("arrangements", "load", "riverford-and-vale", str(path), tmp_path=tmp_path)
    assert same.returncode == 0 and "unchanged" in same.stdout
    doc = json.loads(path.read_text())
    doc["serious_incident_notification"]["deadline"]["value"] = 4
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(doc))
    second = sgflow("arrangements", "load", "riverford-and-vale", str(changed), "--note", "stricter", tmp_path=tmp_path)
    assert second.returncode == 0 and "version 2" in second.stdout
    listing = sgflow("arrangements", "versions", "riverford-and-vale", tmp_path=tmp_path)
    assert listing.stdout.splitlines()[0].startswith("v2") and "stricter" in listing.stdout
    diff = sgflow("arrangements", "diff", "riverford-and-vale", "1", "2", tmp_path=tmp_path)
    assert diff.stdout.strip() == "/serious_incident_notification/deadline/value: 5 → 4"
    wrong = sgflow("arrangements", "load", "northmoor-and-eastholme", str(path), tmp_path=tmp_path)
    assert wrong.returncode == 1 and "/partnership/id" in wrong.stdout
    missing = sgflow("arrangements", "diff", "riverford-and-vale", "1", "9", tmp_path=tmp_path)
    assert missing.returncode == 1 and "no arrangements version 9" in missing.stderr


@pytest.mark.parametrize("url", ["postgresql+psycopg://nobody@127.0.0.1:1/none", "not a url"])
def test_db_upgrade_with_a_bad_database_url(tmp_path, url):
    result = sgflow("db", "upgrade", tmp_path=tmp_path, DATABASE_URL=url)
    assert result.returncode == 1 and "DATABASE_URL" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(("variable", "value"), [("SGFLOW_WEB_WORKERS", "0"), ("SGFLOW_WEB_PORT", "eighty")])
def test_a_bad_setting_is_one_line_naming_the_variable(tmp_path, variable, value):
    result = sgflow("web", tmp_path=tmp_path, **{variable: value})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{variable}='{value}'" in result.stderr and result.stderr.count("\n") == 1
