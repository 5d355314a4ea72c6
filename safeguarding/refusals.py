"""The service layer's refusals: an error with a status, a code, a message and the fields at fault.

The JSON API answers them in its one error shape and the pages with the GOV.UK error page (``web.errors``); the
service layer (``safeguarding``) raises them without knowing about the web.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

RETRY_AFTER_SECONDS = 5


class FieldError(BaseModel):
    path: str
    message: str
    value: Any = None


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, fields: list[FieldError] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields or []
        self.headers = headers


class NotApplied(ApiError):
    """503: Temporal could not be reached, or did not accept the change in time. It may still be applied when the
    service recovers, so the caller retries with the same Idempotency-Key (which never applies a change twice)."""

    def __init__(self, message: str):
        super().__init__(503, "not_applied", f"{message}. It may still be applied when the service recovers: try "
                                             "again in a few seconds with the same Idempotency-Key, which never "
                                             "applies it twice.")
        self.headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}


class StillApplying(Exception):
    """202: the workflow has the change (accepted, or the case's workflow started) but has not finished applying it
    in time; it will be applied without anything more from the caller."""

    def __init__(self, case_id: str, message: str):
        super().__init__(message)
        self.case_id, self.message = case_id, message
