"""Every setting the engine reads, from environment variables, in one place.

The README's settings table mirrors the ``Field`` descriptions below (tests/test_readme.py checks it).
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True)

    data_dir: Path = Field(
        Path(".data"),
        validation_alias=_env("SGFLOW_DATA_DIR"),
        description="Folder for embedded data: the SQLite database, the Temporal dev server's file, "
        "the generated secret key.",
    )
    database_url: str | None = Field(
        None,
        validation_alias=_env("DATABASE_URL"),
        description="SQLAlchemy URL of the application database. Default: SQLite file "
        "`<data dir>/sgflow.db`. Production: `postgresql+psycopg://user:pass@host:5432/sgflow`.",
    )
    temporal_address: str = Field(
        "127.0.0.1:7233",
        validation_alias=_env("TEMPORAL_ADDRESS"),
        description="Temporal frontend host:port. `sgflow up` starts a dev server here if none answers "
        "and the address is local.",
    )
    temporal_namespace: str = Field(
        "default", validation_alias=_env("TEMPORAL_NAMESPACE"), description="Temporal namespace."
    )
    temporal_api_key: str | None = Field(
        None,
        validation_alias=_env("TEMPORAL_API_KEY"),
        description="API key for Temporal Cloud or a secured cluster (enables TLS). Unset locally.",
    )
    temporal_ui_port: int = Field(
        8233,
        validation_alias=_env("SGFLOW_TEMPORAL_UI_PORT"),
        description="Port of the Temporal web UI that `sgflow up` starts with the dev server.",
    )
    task_queue: str = Field(
        "sgflow", validation_alias=_env("SGFLOW_TASK_QUEUE"), description="Temporal task queue of our worker."
    )
    web_host: str = Field(
        "127.0.0.1", validation_alias=_env("SGFLOW_WEB_HOST"), description="Interface the web app binds to."
    )
    web_port: int = Field(8000, validation_alias=_env("SGFLOW_WEB_PORT"), description="Web app port.")
    web_workers: int = Field(
        1,
        ge=1,
        le=64,
        validation_alias=_env("SGFLOW_WEB_WORKERS"),
        description="Web app processes (uvicorn workers) behind the one port. In production about one per CPU core.",
    )
    web_threads: int = Field(
        4,
        ge=1,
        le=64,
        validation_alias=_env("SGFLOW_WEB_THREADS"),
        description="Threads per web process for the pages' database work and rendering. Python runs one at a "
        "time; a few let database waits overlap, more only fight over the interpreter lock.",
    )
    public_url: str | None = Field(
        None,
        validation_alias=_env("SGFLOW_PUBLIC_URL"),
        description="Address users reach the app at, used in emails. Default: http://<web host>:<web port>.",
    )
    secret_key: str | None = Field(
        None,
        validation_alias=_env("SGFLOW_SECRET_KEY"),
        description="Signs session cookies and CSRF tokens. Default: generated once into "
        "`<data dir>/secret_key`. Set it in production (all web replicas share it).",
    )
    seed_demo: bool = Field(
        True,
        validation_alias=_env("SGFLOW_SEED_DEMO"),
        description="`sgflow up` seeds a demo partnership and demo users once. Set to false in production.",
    )
    max_upload_mb: int = Field(
        20, ge=1, le=200, validation_alias=_env("SGFLOW_MAX_UPLOAD_MB"),
        description="Largest report file (PDF or Word) a user may upload, in MB.",
    )
    trusted_proxies: str = Field(
        "",
        validation_alias=_env("SGFLOW_TRUSTED_PROXIES"),
        description="Comma-separated IP addresses or networks (CIDR) of the reverse proxies whose "
        "`X-Forwarded-For` and `X-Forwarded-Proto` headers are believed. Empty (default): no proxy is trusted; "
        "the client address is the TCP peer's.",
    )
    rate_limit_storage: str = Field(
        "memory://",
        validation_alias=_env("SGFLOW_RATE_LIMIT_STORAGE"),
        description="Where password-guessing counters live (a `limits` storage URI). `memory://` (default) is "
        "per web process; production with several web processes or replicas: `redis://host:6379`.",
    )
    max_json_kb: int = Field(
        1024, ge=1, le=102400,
        validation_alias=_env("SGFLOW_MAX_JSON_KB"),
        description="Largest JSON or form body (uploads aside) a request may send, in KB; a larger one is refused "
        "with 413 before it is read, parsed or authenticated.",
    )
    temporal_timeout_seconds: float = Field(
        10.0, gt=0, le=120,
        validation_alias=_env("SGFLOW_TEMPORAL_TIMEOUT_SECONDS"),
        description="How long a request that changes a case waits for the workflow before it answers "
        "503 \"not applied, try again\" (or 202 when the change was accepted and will be applied).",
    )
    payload_keys: str | None = Field(
        None,
        validation_alias=_env("SGFLOW_PAYLOAD_KEYS"),
        description="Keys that encrypt what Temporal stores (AES-256-GCM): `id:base64key[,id:base64key...]`, the "
        "first encrypts, all decrypt (rotation). Default: generated once into `<data dir>/payload_keys`. Set it "
        "in production (the worker and web app share it).",
    )
    smtp_host: str | None = Field(
        None,
        validation_alias=_env("SMTP_HOST"),
        description="SMTP server for email. Unset (default): emails stay in the outbox, readable in the app; "
        "nothing leaves the machine.",
    )
    smtp_port: int = Field(587, validation_alias=_env("SMTP_PORT"), description="SMTP port.")
    smtp_username: str | None = Field(None, validation_alias=_env("SMTP_USERNAME"), description="SMTP user.")
    smtp_password: str | None = Field(
        None, validation_alias=_env("SMTP_PASSWORD"), description="SMTP password."
    )
    smtp_starttls: bool = Field(True, validation_alias=_env("SMTP_STARTTLS"), description="Use STARTTLS.")
    smtp_from: str = Field(
        "sgflow@localhost", validation_alias=_env("SMTP_FROM"), description="Sender address of emails."
    )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'sgflow.db').resolve()}"

    @property
    def resolved_public_url(self) -> str:
        return self.public_url or f"http://{self.web_host}:{self.web_port}"

    @property
    def temporal_ui_url(self) -> str:
        host = self.temporal_address.rsplit(":", 1)[0]
        return f"http://{host}:{self.temporal_ui_port}"

    def resolved_secret_key(self) -> str:
        """The configured key, or one generated once and kept in the data folder."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        key = secrets.token_urlsafe(48)
        write_private(path, key)
        return key


def make_private_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) readable by this user only (0700); tighten it if it exists."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def write_private(path: Path, text: str) -> None:
    """Write a secret file created 0600 from the start (never world-readable, not even for an instant)."""
    make_private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    path.chmod(0o600)


class SettingsError(ValueError):
    """An environment variable with a value the settings cannot take: names the variable, the value and why."""


@lru_cache
def get_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(part) for part in error['loc'])}={error.get('input')!r}: {error['msg']}"
                             for error in exc.errors())
        raise SettingsError(f"bad setting in the environment: {problems}") from None
