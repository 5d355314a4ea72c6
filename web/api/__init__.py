"""The JSON API's routers, and the error responses their OpenAPI declares (one error shape, ``web.errors``)."""

from __future__ import annotations

from typing import Any

from web.errors import ErrorResponse

MAX_INT = 2_147_483_647  # the largest id, version number or offset a request may give (PostgreSQL's integer)
_WHY = {
    400: "The request could not be read (for example a body that is not JSON).",
    401: "No credentials, or wrong ones.",
    403: "Signed in, but not allowed to do this.",
    404: "No such thing, or not yours to see (the same answer either way).",
    409: "It conflicts with the case's state (for example the reference exists, or the case is closed).",
    413: "The body is larger than the limit (SGFLOW_MAX_JSON_KB, or SGFLOW_MAX_UPLOAD_MB for files).",
    422: "Invalid fields: every problem is listed by its JSON Pointer path; nothing was changed.",
    429: "Too many attempts (password guessing is throttled); see Retry-After.",
    503: "Not applied: Temporal could not be reached or did not accept the change in time "
         "(SGFLOW_TEMPORAL_TIMEOUT_SECONDS). It may still be applied when the service recovers: retry with the same "
         "Idempotency-Key, which never applies a change twice. See Retry-After.",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, each in the one error shape."""
    return {code: {"model": ErrorResponse, "description": _WHY[code]} for code in codes}


READ = (400, 401, 404, 422, 429)  # every authenticated read
WRITE = (*READ, 403, 409, 413)  # a change with a body
TEMPORAL = (*WRITE, 503)  # a change that goes through a case's workflow
