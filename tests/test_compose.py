"""The production stack (docker-compose.yml, Dockerfile, .dockerignore, deploy/) checked without Docker.

No Docker engine runs where these tests run, so nothing here builds or starts a container. The tests
read the files and check what a typo or a half-finished edit would break: service names, pinned
images, start order, the settings our processes need (taken from ``safeguarding.settings``), the
search attributes (taken from ``safeguarding.temporal_connection``), secrets that must be supplied,
and what the image build context lets in.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import make_url

from safeguarding.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / "deploy" / ".env.example"
PYPROJECT = ROOT / "pyproject.toml"

POSTGRES = "postgresql"
SCHEMA_JOB = "temporal-admin-tools"
TEMPORAL = "temporal"
NAMESPACE_JOB = "temporal-create-namespace"
SEARCH_ATTRIBUTE_JOB = "temporal-search-attributes"
TEMPORAL_UI = "temporal-ui"
MIGRATE, WORKER, WEB = "migrate", "worker", "web"
OUR_SERVICES = (MIGRATE, WORKER, WEB)
ONE_SHOTS = (SCHEMA_JOB, NAMESPACE_JOB, SEARCH_ATTRIBUTE_JOB, MIGRATE)
REDIS = "redis"
LONG_RUNNING = (POSTGRES, TEMPORAL, TEMPORAL_UI, REDIS, WORKER, WEB)
EXPECTED_SERVICES = {*ONE_SHOTS, *LONG_RUNNING}

# Settings production cannot do without (the app's defaults are for `sgflow up` on a laptop).
REQUIRED_SETTINGS = {
    "DATABASE_URL",
    "TEMPORAL_ADDRESS",
    "TEMPORAL_NAMESPACE",
    "SGFLOW_TASK_QUEUE",
    "SGFLOW_SECRET_KEY",
    "SGFLOW_PAYLOAD_KEYS",
}
APP_ENV_PREFIXES = ("SGFLOW_", "TEMPORAL_", "SMTP_", "DATABASE_")
# Values compose must be given (".env"); the stack refuses to start without them.
REQUIRED_SECRETS = ("POSTGRES_PASSWORD", "APP_DB_PASSWORD", "SGFLOW_SECRET_KEY", "SGFLOW_PAYLOAD_KEYS")
EXPECTED_SEARCH_ATTRIBUTES = {"SgPartnership": "Keyword", "SgProcess": "Keyword", "SgCaseRef": "Keyword"}
# Stand-ins for the values an operator puts in .env, so interpolation can be checked.
FAKE_DOTENV = {
    "POSTGRES_PASSWORD": "pg-secret",
    "APP_DB_PASSWORD": "app-secret",
    "SGFLOW_SECRET_KEY": "signing-secret",
    "SGFLOW_PAYLOAD_KEYS": "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    "SGFLOW_PUBLIC_URL": "https://sg.example.org",
}


# ---------------------------------------------------------------------------------------------------
# Helpers: a small subset of compose's variable interpolation, environment and depends_on forms.


class MissingVariableError(Exception):
    """A ``${VAR:?message}`` whose variable is unset (compose refuses to start)."""


_VAR = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?\Z", re.S)


def interpolate(value: str, env: dict[str, str]) -> str:
    """Resolve ``$$``, ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?err}``."""

    def one(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        if match["bare"]:
            return env.get(match["bare"], "")
        parsed = _BRACED.match(match["braced"])
        assert parsed, f"unsupported interpolation ${{{match['braced']}}} in {value!r}"
        name, op, arg = parsed["name"], parsed["op"], parsed["arg"] or ""
        current = env.get(name)
        missing = current is None or (op is not None and op.startswith(":") and current == "")
        if op in (":-", "-"):
            return arg if missing else current
        if op in (":?", "?"):
            if missing:
                raise MissingVariableError(f"{name}: {arg}")
            return current
        assert op is None, f"unsupported operator {op!r} in {value!r}"
        return current or ""

    return _VAR.sub(one, value)


def variables_in(value: str) -> list[tuple[str, str | None]]:
    """(name, operator) of every variable a string interpolates."""
    found = []
    for match in _VAR.finditer(value):
        if match["bare"]:
            found.append((match["bare"], None))
        elif match["braced"] is not None:
            parsed = _BRACED.match(match["braced"])
            assert parsed, f"unsupported interpolation in {value!r}"
            found.append((parsed["name"], parsed["op"]))
    return found


def strings_in(node) -> list[str]:
    """Every string (keys included) in parsed YAML: what compose interpolates. Comments are not."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in (*strings_in(key), *strings_in(value))]
    if isinstance(node, list):
        return [s for item in node for s in strings_in(item)]
    return []


def compose_variables(compose: dict) -> list[tuple[str, str | None]]:
    return [found for text in strings_in(compose) for found in variables_in(text)]


def environment(service: dict) -> dict[str, str | None]:
    """A service's environment as a dict (mapping or list form); None means "pass through if set"."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, None) for item in env)
        return {name: value for name, value in pairs}
    return {name: (None if value is None else str(value)) for name, value in env.items()}


def resolved_environment(service: dict, dotenv: dict[str, str] | None = None) -> dict[str, str]:
    """The variables a container would get (pass-through ones only when set in ``dotenv``)."""
    dotenv = FAKE_DOTENV if dotenv is None else dotenv
    out = {}
    for name, value in environment(service).items():
        if value is None:
            if name in dotenv:
                out[name] = dotenv[name]
        else:
            out[name] = interpolate(value, dotenv)
    return out


def depends_on(service: dict) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def seconds(duration: str) -> float:
    total, rest = 0.0, duration.strip()
    for amount, unit in re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s|us)", rest):
        total += float(amount) * {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6}[unit]
        rest = rest.replace(f"{amount}{unit}", "", 1)
    assert not rest, f"cannot parse duration {duration!r}"
    return total


def image_parts(image: str) -> tuple[str, str | None]:
    """("repo/name", tag) of an image reference; tag None when absent. Digests are kept in the tag."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = name.rsplit(":", 1)
    else:
        repo, tag = name, None
    return repo, (f"{tag}@{digest}" if digest and tag else tag)


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    logical, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        logical.append(current)
        current = ""
    assert not current, "Dockerfile ends in a line continuation"
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in logical
    ]


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Whether Docker leaves ``path`` out of the build context (last matching pattern wins,
    a pattern matching a parent directory covers what is inside it)."""

    def regex(pattern: str) -> re.Pattern:
        out, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out, i = out + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                out, i = out + ".*", i + 2
            elif pattern[i] == "*":
                out, i = out + "[^/]*", i + 1
            elif pattern[i] == "?":
                out, i = out + "[^/]", i + 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                out, i = out + pattern[i : end + 1], end + 1
            else:
                out, i = out + re.escape(pattern[i]), i + 1
        return re.compile(out + r"\Z")

    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        body = body.strip("/")
        if any(regex(body).match(c) for c in candidates):
            excluded = not negate
    return excluded


# ---------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def compose_text() -> str:
    return COMPOSE_FILE.read_text()


@pytest.fixture(scope="module")
def compose(compose_text) -> dict:
    data = yaml.safe_load(compose_text)
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), "no services in compose file"
    return data


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict]:
    return compose["services"]


@pytest.fixture(scope="module")
def settings_env_names() -> set[str]:
    names = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None) or ([alias] if isinstance(alias, str) else [])
        names.update(c for c in choices if isinstance(c, str))
    assert {"DATABASE_URL", "SGFLOW_SECRET_KEY"} <= names, "could not read env names from Settings"
    return names


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return dockerfile_instructions(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads(PYPROJECT.read_text())


def script_of(service: dict) -> Path:
    """The host file behind a job's ``entrypoint: ["/bin/sh", "/deploy/..."]`` (via its bind mount)."""
    entrypoint = service.get("entrypoint")
    assert isinstance(entrypoint, list) and entrypoint[0] in ("/bin/sh", "sh"), entrypoint
    target = entrypoint[1]
    for volume in service.get("volumes", []):
        source, container, *_ = volume.split(":")
        if target.startswith(container.rstrip("/") + "/") and source.startswith("."):
            return ROOT / source / target[len(container.rstrip("/")) + 1 :]
    raise AssertionError(f"{target} is not bind-mounted from the repository")


# ---------------------------------------------------------------------------------------------------
# The services and their images


def test_every_service_of_the_production_shape_exists(services):
    missing = EXPECTED_SERVICES - services.keys()
    assert not missing, f"services missing from docker-compose.yml: {sorted(missing)}"


def test_every_image_is_pinned_to_a_version(services):
    for name, service in services.items():
        image = interpolate(service.get("image", ""), {})
        assert image, f"{name} has no image"
        _, tag = image_parts(image)
        assert tag, f"{name}: image {image!r} has no tag"
        assert not tag.startswith("latest"), f"{name}: image {image!r} uses latest"
        if name not in OUR_SERVICES:
            assert re.match(r"\d+\.\d+", tag), f"{name}: {image!r} is not pinned to at least major.minor"


def test_third_party_images_are_the_expected_ones(services):
    def repo(name):
        return image_parts(services[name]["image"])[0]

    assert repo(POSTGRES) == "postgres"
    assert image_parts(services[POSTGRES]["image"])[1].startswith("16."), (
        "Temporal's compose reference uses 16"
    )
    for job in (SCHEMA_JOB, NAMESPACE_JOB, SEARCH_ATTRIBUTE_JOB):
        assert repo(job) == "temporalio/admin-tools", job
    assert repo(TEMPORAL) == "temporalio/server"
    assert repo(TEMPORAL_UI) == "temporalio/ui"


def test_every_web_process_shares_one_password_throttle(services):
    """N web processes with per-process counters would give a guesser N times the attempts."""
    assert image_parts(services[REDIS]["image"])[0] == "redis"
    storage = services[WEB]["environment"]["SGFLOW_RATE_LIMIT_STORAGE"]
    assert storage == f"redis://{REDIS}:6379", storage
    assert services[WEB]["depends_on"][REDIS]["condition"] == "service_healthy"
    import limits.storage

    assert isinstance(limits.storage.storage_from_string(storage), limits.storage.RedisStorage)  # the client is there


def test_temporal_server_and_admin_tools_versions_match(services):
    # The schema job must bring the databases to the version the server expects.
    server_tag = image_parts(services[TEMPORAL]["image"])[1]
    for job in (SCHEMA_JOB, NAMESPACE_JOB, SEARCH_ATTRIBUTE_JOB):
        assert image_parts(services[job]["image"])[1] == server_tag, f"{job} and temporal differ in version"


def test_our_processes_run_one_image_built_from_our_dockerfile(services):
    images = {services[name].get("image") for name in OUR_SERVICES}
    assert len(images) == 1 and None not in images, f"migrate/worker/web must share one image: {images}"
    for name in OUR_SERVICES:
        build = services[name].get("build")
        assert isinstance(build, dict), f"{name} has no build section"
        assert (ROOT / build.get("context", ".")).resolve() == ROOT, f"{name} builds from another context"
        assert (
            ROOT / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
        ).resolve() == DOCKERFILE
        assert DOCKERFILE.is_file()
    assert services[MIGRATE]["command"] == ["db", "upgrade"]
    assert services[WORKER]["command"] == ["worker"]
    assert services[WEB]["command"] == ["web"]


def test_commands_exist_in_the_cli():
    from sgflow.cli import app

    commands = {c.name or c.callback.__name__ for c in app.registered_commands}
    groups = {g.name: g.typer_instance for g in app.registered_groups}
    assert {"web", "worker"} <= commands
    db_commands = {c.name or c.callback.__name__ for c in groups["db"].registered_commands}
    assert "upgrade" in db_commands
    arrangement_commands = {c.name for c in groups["arrangements"].registered_commands}
    assert "load" in arrangement_commands, "docs/production.md tells operators to run `arrangements load`"


# ---------------------------------------------------------------------------------------------------
# Settings wired into our services


def test_production_settings_are_set_for_our_services(services, settings_env_names):
    assert settings_env_names >= REQUIRED_SETTINGS, "a required name is no longer a setting"
    for name in OUR_SERVICES:
        env = resolved_environment(services[name])
        missing = REQUIRED_SETTINGS - {k for k, v in env.items() if v}
        assert not missing, f"{name} lacks {sorted(missing)}"
        assert env.get("SGFLOW_SEED_DEMO", "").lower() == "false", f"{name} would seed demo data"
    web_env = resolved_environment(services[WEB])
    assert web_env.get("SGFLOW_WEB_HOST") == "0.0.0.0", "web must listen on all interfaces in a container"


def test_every_app_variable_passed_is_a_real_setting(services, settings_env_names):
    for name in OUR_SERVICES:
        for var in environment(services[name]):
            if var.startswith(APP_ENV_PREFIXES):
                assert var in settings_env_names, (
                    f"{name}: {var} is not a setting in safeguarding/settings.py"
                )


def test_our_services_get_the_same_settings(services):
    base = environment(services[MIGRATE])
    for name in (WORKER, WEB):
        env = environment(services[name])
        for var, value in base.items():
            assert env.get(var, object()) == value, f"{name} and migrate differ on {var}"


def test_settings_values_parse(services):
    # What pydantic would do with the values compose passes (with .env stand-ins and SMTP set).
    dotenv = {**FAKE_DOTENV, "SMTP_HOST": "smtp.example.org", "SMTP_PORT": "2525", "SMTP_STARTTLS": "false"}
    for name in OUR_SERVICES:
        settings = Settings(**resolved_environment(services[name], dotenv))
        assert settings.seed_demo is False
        assert settings.smtp_port == 2525 and settings.smtp_starttls is False
    web = Settings(**resolved_environment(services[WEB]))
    assert web.web_port == 8000


def test_smtp_settings_pass_through_only_when_set(services):
    # Unset SMTP_HOST must stay unset (None), not become "": no SMTP_HOST means "keep email in the outbox".
    for name in OUR_SERVICES:
        env = environment(services[name])
        smtp = {k: v for k, v in env.items() if k.startswith("SMTP_")}
        assert {
            "SMTP_HOST",
            "SMTP_PORT",
            "SMTP_USERNAME",
            "SMTP_PASSWORD",
            "SMTP_STARTTLS",
            "SMTP_FROM",
        } <= smtp.keys(), f"{name} does not pass every SMTP setting"
        assert smtp["SMTP_HOST"] is None, (
            f"{name}: SMTP_HOST should be a pass-through, not {smtp['SMTP_HOST']!r}"
        )
        assert "SMTP_HOST" not in resolved_environment(services[name], FAKE_DOTENV)


def test_database_url_is_the_app_database_on_the_postgres_service(services):
    pg_env = resolved_environment(services[POSTGRES])
    temporal_env = resolved_environment(services[TEMPORAL])
    temporal_databases = {
        temporal_env.get("DBNAME", "temporal"),
        temporal_env.get("VISIBILITY_DBNAME", "temporal_visibility"),
        "temporal",
        "temporal_visibility",
        "postgres",
    }
    for name in OUR_SERVICES:
        url = make_url(resolved_environment(services[name])["DATABASE_URL"])
        assert url.drivername == "postgresql+psycopg", f"{name}: driver {url.drivername}"
        assert url.host == POSTGRES and url.host in services
        assert (url.port or 5432) == 5432
        assert url.database not in temporal_databases, f"{name} would use Temporal's database {url.database}"
        assert url.database == pg_env["APP_DB_NAME"], (
            "DATABASE_URL and the init script name different databases"
        )
        assert url.username == pg_env["APP_DB_USER"], "DATABASE_URL and the init script name different users"
        assert url.username != pg_env["POSTGRES_USER"], "the app must not connect as the superuser"
        assert url.password == FAKE_DOTENV["APP_DB_PASSWORD"]


def test_temporal_address_points_at_the_temporal_service(services):
    for name in (*OUR_SERVICES, NAMESPACE_JOB, SEARCH_ATTRIBUTE_JOB, TEMPORAL_UI):
        address = resolved_environment(services[name])["TEMPORAL_ADDRESS"]
        host, _, port = address.rpartition(":")
        assert host == TEMPORAL and port == "7233", f"{name}: TEMPORAL_ADDRESS={address}"
    assert image_parts(services[host]["image"])[0] == "temporalio/server"


def test_every_job_uses_the_apps_namespace(services):
    app_namespace = environment(services[WORKER])["TEMPORAL_NAMESPACE"]
    for job in (NAMESPACE_JOB, SEARCH_ATTRIBUTE_JOB):
        assert environment(services[job])["TEMPORAL_NAMESPACE"] == app_namespace, job
    assert environment(services[TEMPORAL_UI])["TEMPORAL_DEFAULT_NAMESPACE"] == app_namespace


# ---------------------------------------------------------------------------------------------------
# Secrets


def test_secrets_use_the_required_form_everywhere(compose, services):
    for var in REQUIRED_SECRETS:
        uses = [op for name, op in compose_variables(compose) if name == var]
        assert uses, f"{var} is never used"
        assert all(op == ":?" for op in uses), f"{var} must always be ${{{var}:?...}} (found {uses})"
    assert re.fullmatch(r"\$\{SGFLOW_SECRET_KEY:\?.+\}", environment(services[WEB])["SGFLOW_SECRET_KEY"])
    assert re.fullmatch(r"\$\{POSTGRES_PASSWORD:\?.+\}", environment(services[POSTGRES])["POSTGRES_PASSWORD"])
    with pytest.raises(MissingVariableError):
        resolved_environment(
            services[WEB], {k: v for k, v in FAKE_DOTENV.items() if k != "SGFLOW_SECRET_KEY"}
        )
    with pytest.raises(MissingVariableError):
        resolved_environment(services[POSTGRES], {**FAKE_DOTENV, "POSTGRES_PASSWORD": ""})


def test_the_same_password_reaches_postgres_and_temporal(services):
    password = FAKE_DOTENV["POSTGRES_PASSWORD"]
    assert resolved_environment(services[POSTGRES])["POSTGRES_PASSWORD"] == password
    assert resolved_environment(services[TEMPORAL])["POSTGRES_PWD"] == password
    assert resolved_environment(services[SCHEMA_JOB])["SQL_PASSWORD"] == password
    pg_user = resolved_environment(services[POSTGRES])["POSTGRES_USER"]
    assert resolved_environment(services[TEMPORAL])["POSTGRES_USER"] == pg_user
    assert resolved_environment(services[SCHEMA_JOB])["SQL_USER"] == pg_user


def test_env_example_lists_every_variable_and_leaves_secrets_empty(compose, services):
    text = ENV_EXAMPLE.read_text()
    assigned = dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", text, re.M))
    commented = set(re.findall(r"^#\s*([A-Z][A-Z0-9_]*)=", text, re.M))
    used = {name for name, _ in compose_variables(compose)}
    passthrough = {
        var for name in OUR_SERVICES for var, value in environment(services[name]).items() if value is None
    }
    required = {name for name, op in compose_variables(compose) if op in (":?", "?")}
    assert required <= assigned.keys(), (
        f"required but not in .env.example: {sorted(required - assigned.keys())}"
    )
    for secret in REQUIRED_SECRETS:
        assert assigned[secret] == "", f"{secret} must be empty in the example so an unedited copy fails"
    unknown = (assigned.keys() | commented) - used - passthrough
    assert not unknown, f".env.example names variables compose never reads: {sorted(unknown)}"
    assert passthrough <= commented | assigned.keys(), "document every pass-through variable"


# ---------------------------------------------------------------------------------------------------
# Start order and compose sanity


def test_start_order(services):
    assert depends_on(services[SCHEMA_JOB]) == {POSTGRES: "service_healthy"}
    assert depends_on(services[TEMPORAL])[SCHEMA_JOB] == "service_completed_successfully"
    assert depends_on(services[NAMESPACE_JOB])[TEMPORAL] == "service_healthy"
    assert depends_on(services[SEARCH_ATTRIBUTE_JOB])[NAMESPACE_JOB] == "service_completed_successfully"
    assert depends_on(services[TEMPORAL_UI])[TEMPORAL] == "service_healthy"
    assert depends_on(services[MIGRATE])[POSTGRES] == "service_healthy"
    for name in (WORKER, WEB):
        deps = depends_on(services[name])
        assert deps.get(MIGRATE) == "service_completed_successfully", f"{name} must wait for migrations"
        assert deps.get(SEARCH_ATTRIBUTE_JOB) == "service_completed_successfully", (
            f"{name} must wait for the search attributes"
        )


def test_depends_on_targets_exist_without_cycles(services):
    for name, service in services.items():
        for target in depends_on(service):
            assert target in services, f"{name} depends on unknown service {target}"

    def visit(name, path):
        assert name not in path, f"depends_on cycle: {' -> '.join([*path, name])}"
        for target in depends_on(services[name]):
            visit(target, [*path, name])

    for name in services:
        visit(name, [])


def test_service_healthy_targets_have_a_health_check(services, dockerfile):
    image_has_healthcheck = any(
        op == "HEALTHCHECK" and not args.upper().startswith("NONE") for op, args in dockerfile
    )
    for name, service in services.items():
        for target, condition in depends_on(service).items():
            if condition != "service_healthy":
                continue
            check = services[target].get("healthcheck")
            if check is not None:
                assert not check.get("disable"), (
                    f"{name} waits for {target} to be healthy; its check is disabled"
                )
                assert check.get("test"), f"{target} has an empty healthcheck"
            else:
                assert target in OUR_SERVICES and image_has_healthcheck, f"{target} has no healthcheck"


def test_one_shot_jobs_are_not_restarted_and_services_are(services):
    for name in ONE_SHOTS:
        assert services[name].get("restart", "no") == "no", f"{name} would run again and again"
    for name in LONG_RUNNING:
        assert services[name].get("restart") in ("unless-stopped", "always"), f"{name} is not restarted"


def test_image_healthcheck_is_off_where_nothing_serves_http(services):
    for name in (WORKER, MIGRATE):
        assert services[name].get("healthcheck", {}).get("disable") is True, (
            f"{name} inherits the web HEALTHCHECK and would be reported unhealthy"
        )


def test_named_volumes_are_declared_and_bind_mounts_exist(compose, services):
    declared = set((compose.get("volumes") or {}).keys())
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"
    pg_volumes = [v.split(":") for v in services[POSTGRES]["volumes"]]
    assert any(src in declared and dst == "/var/lib/postgresql/data" for src, dst, *_ in pg_volumes), (
        "PostgreSQL data must live in a named volume"
    )


def test_ports(services):
    assert services[WEB].get("ports") == ["8000:8000"]
    container_port = services[WEB]["ports"][0].rsplit(":", 1)[1]
    assert resolved_environment(services[WEB]).get("SGFLOW_WEB_PORT", "8000") == container_port
    for name in (WORKER, MIGRATE):
        assert "ports" not in services[name], f"{name} must not publish ports (scaling)"
        assert "container_name" not in services[name], f"{name} must not fix a container name (scaling)"
    for name in (POSTGRES, TEMPORAL):
        assert "ports" not in services[name], f"{name} should stay on the compose network"
    ui_ports = services[TEMPORAL_UI]["ports"]
    assert ui_ports == ["127.0.0.1:8080:8080"], "the Temporal UI has no login: loopback only"


def test_worker_gets_time_to_shut_down_gracefully(services):
    assert seconds(services[WORKER]["stop_grace_period"]) >= 30


# ---------------------------------------------------------------------------------------------------
# Temporal jobs and configuration


def test_search_attribute_job_registers_exactly_ours(services):
    from safeguarding.temporal_connection import SEARCH_ATTRIBUTES

    env = resolved_environment(services[SEARCH_ATTRIBUTE_JOB])
    pairs = dict(pair.split("=", 1) for pair in env["SEARCH_ATTRIBUTES"].split())
    assert pairs == EXPECTED_SEARCH_ATTRIBUTES
    assert pairs == SEARCH_ATTRIBUTES, "compose and safeguarding/temporal_connection.py disagree"
    script = script_of(services[SEARCH_ATTRIBUTE_JOB]).read_text()
    assert "$SEARCH_ATTRIBUTES" in script and "search-attribute create" in script
    assert re.search(r'\*"already exists"\*\)', script), (
        "re-running must treat an existing attribute as success"
    )


def test_schema_job_sets_up_both_temporal_databases(services):
    env = resolved_environment(services[SCHEMA_JOB])
    temporal_env = resolved_environment(services[TEMPORAL])
    assert env["SQL_HOST"] == temporal_env["POSTGRES_SEEDS"] == POSTGRES
    assert env["TEMPORAL_DB"] == temporal_env["DBNAME"] == "temporal"
    assert env["TEMPORAL_VISIBILITY_DB"] == temporal_env["VISIBILITY_DBNAME"] == "temporal_visibility"
    script = script_of(services[SCHEMA_JOB]).read_text()
    assert "--plugin postgres12" in script
    for step in ("create", "setup-schema -v 0.0", "update-schema -d"):
        assert step in script, step
    assert "/etc/temporal/schema/postgresql/v12" in script
    assert '"${SCHEMA_ROOT}/${versioned}/versioned"' in script
    assert re.search(r'setup "\$TEMPORAL_DB" temporal\b', script)
    assert re.search(r'setup "\$TEMPORAL_VISIBILITY_DB" visibility\b', script)


def test_temporal_server_configuration(services):
    env = resolved_environment(services[TEMPORAL])
    assert env["DB"] == "postgres12"
    assert env["BIND_ON_IP"] == "0.0.0.0", "other containers could not reach the frontend"
    assert int(env["NUM_HISTORY_SHARDS"]) >= 4
    config_path = env["DYNAMIC_CONFIG_FILE_PATH"]
    for volume in services[TEMPORAL]["volumes"]:
        source, container, *_ = volume.split(":")
        if config_path.startswith(container.rstrip("/") + "/"):
            host_file = ROOT / source / config_path[len(container.rstrip("/")) + 1 :]
            break
    else:
        raise AssertionError("the dynamic config file is not mounted")
    config = yaml.safe_load(host_file.read_text())
    assert isinstance(config, dict)
    for key, values in config.items():
        assert isinstance(values, list) and all("value" in v for v in values), key
    assert "system.forceSearchAttributesCacheRefreshOnRead" not in config, "a development-only switch"


def test_namespace_job(services):
    env = resolved_environment(services[NAMESPACE_JOB])
    assert seconds(env["TEMPORAL_NAMESPACE_RETENTION"]) >= 24 * 3600
    script = script_of(services[NAMESPACE_JOB]).read_text()
    assert "namespace create" in script and "namespace describe" in script
    assert '--retention "$TEMPORAL_NAMESPACE_RETENTION"' in script


def test_postgres_creates_the_app_database_on_first_start(services):
    env = resolved_environment(services[POSTGRES])
    assert env["APP_DB_PASSWORD"] == FAKE_DOTENV["APP_DB_PASSWORD"]
    mounts = [v.split(":") for v in services[POSTGRES]["volumes"]]
    init = [(src, dst) for src, dst, *_ in mounts if dst.startswith("/docker-entrypoint-initdb.d/")]
    assert len(init) == 1, "the app database needs its init script"
    script = (ROOT / init[0][0]).read_text()
    assert "CREATE ROLE" in script and "CREATE DATABASE" in script
    for var in ("APP_DB_USER", "APP_DB_NAME", "APP_DB_PASSWORD"):
        assert var in script and var in env, var
    check = " ".join(services[POSTGRES]["healthcheck"]["test"])
    assert "pg_isready" in check and "127.0.0.1" in check, "check over TCP, not the init-time socket"


def test_deploy_scripts_are_posix_sh_with_strict_mode(services):
    scripts = [script_of(services[job]) for job in (SCHEMA_JOB, NAMESPACE_JOB, SEARCH_ATTRIBUTE_JOB)]
    scripts.append(ROOT / "deploy" / "postgres" / "10-create-app-database.sh")
    sh = shutil.which("dash") or shutil.which("sh")
    for script in scripts:
        text = script.read_text()
        assert text.startswith("#!/bin/sh\n"), script
        assert "\nset -eu\n" in text, f"{script.name}: add `set -eu`"
        assert "$$" not in text
        if sh:
            result = subprocess.run([sh, "-n", str(script)], capture_output=True, text=True)
            assert result.returncode == 0, f"{script.name}: {result.stderr}"


# ---------------------------------------------------------------------------------------------------
# Dockerfile and build context


def test_dockerfile_base_image_is_pinned_python_311_slim(dockerfile):
    args = {}
    for op, rest in dockerfile:
        if op == "ARG" and "=" in rest:
            key, value = rest.split("=", 1)
            args[key.strip()] = value.strip()
    froms = [rest.split()[0] for op, rest in dockerfile if op == "FROM"]
    assert froms
    for reference in froms:
        image = interpolate(reference, args)
        if image in {rest.split()[-1] for op, rest in dockerfile if op == "FROM" and " AS " in rest.upper()}:
            continue  # a build stage
        repo, tag = image_parts(image)
        assert repo == "python" and tag and re.fullmatch(r"3\.11\.\d+-slim(-\w+)?", tag), image


def test_dockerfile_runs_sgflow_as_non_root_with_a_web_healthcheck(dockerfile, pyproject):
    def last(op):
        found = [rest for o, rest in dockerfile if o == op]
        assert found, f"Dockerfile has no {op}"
        return found[-1]

    assert json.loads(last("ENTRYPOINT")) == ["sgflow"]
    assert pyproject["project"]["scripts"].get("sgflow"), "the sgflow console script is gone"
    assert json.loads(last("CMD")) == ["web"]
    user = last("USER").split(":")[0]
    assert user not in ("root", "0", ""), "the image must not run as root"
    healthcheck = last("HEALTHCHECK")
    assert "/healthz" in healthcheck and "python" in healthcheck
    assert "curl" not in healthcheck and "wget" not in healthcheck, "the slim image has neither"
    assert "8000" in last("EXPOSE").split()
    runs = " ".join(rest for op, rest in dockerfile if op == "RUN")
    assert re.search(r"pip install (--no-deps )?\.(\s|$)", runs), "the project must be installed with pip"
    assert "[test]" not in runs and ".[" not in runs, "no dev/test extras in the image"


def test_dockerfile_healthcheck_command_is_valid_python(dockerfile):
    healthcheck = [rest for op, rest in dockerfile if op == "HEALTHCHECK"][-1]
    command = json.loads(healthcheck[healthcheck.index("CMD") + 3 :].strip())
    assert command[:2] == ["python", "-c"]
    compile(command[2], "<healthcheck>", "exec")


def test_dockerignore_lets_in_the_package_and_nothing_private(pyproject):
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    includes = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = sorted({pattern.rstrip("*").rstrip(".") for pattern in includes})
    needed = [
        "pyproject.toml",
        *(f"{package}/__init__.py" for package in packages),
        "web/templates/base.html",
        "web/static/govuk/govuk-frontend.min.css",
        "safeguarding/migrations/versions/0001_initial.py",
        "schemas/examples/x.json",
    ]
    readme = pyproject["project"].get("readme")
    if isinstance(readme, str):
        needed.append(readme)
    for path in needed:
        assert not dockerignore_excludes(patterns, path), f".dockerignore leaves out {path}"
    private = [
        ".env",
        ".venv/bin/python",
        ".data/sgflow.db",
        ".git/config",
        "tests/test_compose.py",
        "deploy/.env.example",
        "docker-compose.yml",
        "web/__pycache__/app.cpython-311.pyc",
        "sgflow.egg-info/PKG-INFO",
        ".pytest_cache/v/x",
        "node_modules/x/index.js",
    ]
    for path in private:
        assert dockerignore_excludes(patterns, path), f".dockerignore lets {path} into the image"


@pytest.mark.parametrize(
    ("pattern_lines", "path", "excluded"),
    [
        (["*", "!web/"], "web/app.py", False),
        (["*", "!web/"], "tests/x.py", True),
        (["*", "!web/", "**/__pycache__"], "web/a/__pycache__/x.pyc", True),
        ([".env"], ".env", True),
        ([".env"], "deploy/.env", False),
    ],
)
def test_dockerignore_matcher(pattern_lines, path, excluded):
    assert dockerignore_excludes(pattern_lines, path) is excluded


# ---------------------------------------------------------------------------------------------------
# The helpers themselves (a helper that always agrees would hide every mistake above)


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("${A:-x}", {}, "x"),
        ("${A:-x}", {"A": ""}, "x"),
        ("${A-x}", {"A": ""}, ""),
        ("a$${B}c", {}, "a${B}c"),
        ("${A:?set A}/$B", {"A": "1", "B": "2"}, "1/2"),
    ],
)
def test_interpolate(value, env, expected):
    assert interpolate(value, env) == expected


def test_interpolate_refuses_missing_required():
    with pytest.raises(MissingVariableError, match="set A"):
        interpolate("${A:?set A}", {"A": ""})


def test_durations():
    assert seconds("1m30s") == 90 and seconds("60s") == 60 and seconds("720h") == 720 * 3600
    with pytest.raises(AssertionError):
        seconds("30 seconds")
