"""One error shape for the whole JSON API, and friendly pages for browsers.

Under ``/api``, every error is ``{"error": {"status": int, "code": str, "message": str, "fields": [{"path", "message",
"value"}]}}``. Unexpected faults are logged and answered with a 500 in the same shape, never a traceback.
Everything else (the pages) gets the GOV.UK error page (``errors/error.html``) with the same status: 403, 404,
409, 413, 422, 429, 500; a page that needs a signed-in person redirects to the sign-in page instead.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from safeguarding.refusals import ApiError, FieldError, plain_errors
from web.auth import SignInRequired, session_principal, sign_in_url

log = logging.getLogger("sgflow.web")


class ErrorBody(BaseModel):
    status: int
    code: str
    message: str
    fields: list[FieldError] = []


class ErrorResponse(BaseModel):
    error: ErrorBody


def error_response(status: int, code: str, message: str, fields: list[FieldError] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(status=status, code=code, message=message, fields=fields or []))
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


def _body_model(request: Request) -> Any:
    """The pydantic model of the matched route's JSON body, if it has one: its ``field_labels`` and
    ``field_prompts`` name its fields in the messages (``safeguarding.refusals.plain_errors``)."""
    dependant = getattr(request.scope.get("route"), "dependant", None)
    for param in getattr(dependant, "body_params", None) or []:
        model = getattr(getattr(param, "field_info", None), "annotation", None)
        if isinstance(model, type) and issubclass(model, BaseModel):
            return model
    return None


_CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 409: "conflict", 410: "gone", 413: "too_large", 415: "unsupported_media_type",
          422: "invalid", 429: "too_many_requests"}


# --- pages: the GOV.UK error page for everything outside /api -------------------------------------------------

HEADINGS = {
    400: "Sorry, there is a problem with the request",
    403: "You cannot do this",
    404: "Page not found",
    405: "Page not found",
    409: "This has already been done",
    410: "This is no longer available",
    413: "What you sent is too large",
    415: "Sorry, there is a problem with the request",
    422: "There is a problem",
    429: "Too many attempts",
    500: "Sorry, there is a problem with the service",
}
MESSAGES = {
    403: "You do not have permission to do this. If you think you should, ask your partnership’s system lead.",
    404: "If you typed the web address, check it is correct. If you pasted it, check you copied all of it. "
         "If you followed a link, the case or task may not exist or may belong to another partnership.",
    405: "If you typed the web address, check it is correct.",
    413: "Nothing was changed. Send less: forms and documents are limited in size.",
    500: "Try again later. Nothing was changed.",
}


def is_api(request: Request) -> bool:
    path = request.url.path
    return path == "/api" or path.startswith("/api/") or path in ("/openapi.json", "/healthz")


def _principal_of(request: Request, *, look_up: bool):
    state = request.scope.get("state") or {}
    if "principal" in state or not look_up:
        return state.get("principal")
    try:
        return session_principal(request)
    except Exception:  # the error page must render even when the database does not answer
        return None


def error_page(request: Request, status: int, message: str | None = None, *, heading: str | None = None,
               details: list[str] | None = None, headers: dict[str, str] | None = None,
               look_up_user: bool = True, links: list[dict[str, str]] | None = None) -> Response:
    """The GOV.UK error page (whole, or its content block for htmx), with the status; never a traceback."""
    try:
        from web.pages import page_context
        from web.templating import render

        principal = _principal_of(request, look_up=look_up_user)
        context = page_context(request, principal, heading=heading or HEADINGS.get(status, HEADINGS[500]),
                               message=message or MESSAGES.get(status, ""), details=details or [],
                               status_code=status, home_href="/", links=links or [])
        return render(request, "errors/error.html", context, block="content", status_code=status, headers=headers)
    except Exception:
        log.exception("could not render the error page for %s", request.url.path)
        return PlainTextResponse(f"{HEADINGS.get(status, HEADINGS[500])}. {MESSAGES.get(status, '')}",
                                 status_code=status, headers=headers)


def error_for(request: Request, status: int, code: str, message: str, **page: Any) -> Response:
    """JSON for /api, the error page for everything else."""
    if is_api(request):
        return error_response(status, code, message, headers=page.get("headers"))
    return error_page(request, status, message, **page)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired):
        url = sign_in_url(exc.next_path, exc.expired)
        if request.headers.get("hx-request") == "true":  # htmx: a whole-page visit, not a swap
            return Response(status_code=200, headers={"HX-Redirect": url})
        return RedirectResponse(url, status_code=303)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        if is_api(request):
            return error_response(exc.status, exc.code, exc.message, exc.fields, headers=exc.headers)
        details = [f"{f.path.lstrip('/') or 'form'}: {f.message}" for f in exc.fields]
        heading = HEADINGS.get(exc.status) if exc.status != 404 else None
        return error_page(request, exc.status, exc.message if exc.status != 404 else None, heading=heading,
                          details=details, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        model = _body_model(request)
        fields = plain_errors(exc.errors(), getattr(model, "field_labels", None), getattr(model, "field_prompts", None))
        if not is_api(request):
            return error_page(request, 422, "The web address or form had something we could not read.",
                              details=[f"{f.path.lstrip('/')}: {f.message}" for f in fields])
        return error_response(422, "invalid", "the request has invalid fields", fields)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        headers = getattr(exc, "headers", None)
        if not is_api(request):
            return error_page(request, exc.status_code, None, headers=headers)
        return error_response(exc.status_code, _CODES.get(exc.status_code, "error"), str(exc.detail),
                              headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        if not is_api(request):
            return error_page(request, 500, look_up_user=False)
        return error_response(500, "internal", "something went wrong on our side; nothing was changed")
