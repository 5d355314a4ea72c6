"""Home, sign-in and sign-out.

The sign-in form is read into ``SignInForm`` (a pydantic model) and a refusal is shown through ``web.form_errors``,
as every form is; a field the form does not have is refused by name, before any password is looked at. Wrong
credentials get one vague message that never says which part was wrong, and every password check is throttled
(``web.auth.check_password``)."""

from __future__ import annotations

from typing import Annotated, ClassVar

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from safeguarding.accounts import Principal
from safeguarding.audit_log import audit
from safeguarding.tables import User
from web.auth import (
    TooManyAttempts,
    check_password,
    client_ip,
    safe_next,
    session_principal,
)
from web.deps import DbEngine, PagePrincipal
from web.form_errors import error_summary, field_errors, unknown_fields
from web.pages import page_context
from web.session import end_session, session_of, start_session
from web.templating import render

router = APIRouter(include_in_schema=False)

HOME_BY_KIND = {"national_body": "/national", "partnership_lead": "/cases", "administrator": "/cases"}
WRONG_SIGN_IN = "Enter a correct email address and password"
FIELDS = ("email", "password", "next")


class SignInForm(BaseModel):
    """The sign-in form's fields (the password exactly as typed: spaces count)."""

    model_config = ConfigDict(extra="forbid")
    field_labels: ClassVar[dict[str, str]] = {"email": "your email address", "password": "your password"}
    field_prompts: ClassVar[dict[str, str]] = {"email": "Enter your email address",
                                               "password": "Enter your password"}

    email: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
    password: str = Field(min_length=1)
    next: str = "/"


def read_sign_in(form) -> tuple[SignInForm | None, dict[str, str]]:
    """(the form, or None; errors by form field name): every problem at once."""
    unknown = unknown_fields(form.keys(), lambda name: name in FIELDS)
    if unknown:
        return None, {"form": unknown}
    sent = {name: str(form.get(name)) for name in FIELDS if name in form}
    try:
        return SignInForm.model_validate(sent), {}
    except ValidationError as exc:
        return None, field_errors(exc, model=SignInForm)


# --- home, sign-in, sign-out ------------------------------------------------------------------------------------


@router.get("/")
def home(principal: PagePrincipal):
    return RedirectResponse(HOME_BY_KIND.get(principal.kind, "/tasks"), status_code=303)


def _sign_in_page(request: Request, *, status: int = 200, email: str = "", next_path: str = "/",
                  errors: dict[str, str] | None = None, summary: list[dict] | None = None,
                  notice: str | None = None) -> Response:
    errors = errors or {}
    context = page_context(request, None, page_title="Sign in", page_has_errors=bool(summary), email=email,
                           next_path=next_path, errors=errors, error_summary=summary or [], notice=notice)
    return render(request, "auth/sign_in.html", context, status_code=status)


@router.get("/sign-in")
def sign_in_form(request: Request, next: str | None = None, expired: str | None = None,
                 signed_out: str | None = None):
    next_path = safe_next(next)
    if session_principal(request) is not None:
        return RedirectResponse(next_path, status_code=303)
    notice = None
    if expired or session_of(request).expired:
        notice = "You were signed out because you had not done anything for a while. Sign in again to carry on."
    elif signed_out:
        notice = "You have signed out."
    return _sign_in_page(request, next_path=next_path, notice=notice)


@router.post("/sign-in")
async def sign_in(request: Request, engine: DbEngine):
    form = await request.form()
    email = str(form.get("email", "")).strip()  # shown again as typed
    next_path = safe_next(str(form.get("next", "/")))
    read, errors = read_sign_in(form)
    if errors or read is None:
        summary = error_summary(errors, ["form", "email", "password"], {"form": "#email"})
        return _sign_in_page(request, status=422, email=email, next_path=next_path, errors=errors, summary=summary)
    email, password = read.email, read.password
    engine, ip = engine, client_ip(request)

    def check() -> tuple[Principal | None, str | None]:
        principal = check_password(request, email, password)  # throttled: TooManyAttempts, password unchecked
        if principal is None:
            return None, None
        with Session(engine) as session:
            password_hash = session.get(User, principal.user_id).password_hash
        start_session(request, engine, principal.user_id, password_hash)  # a new id: no session fixation
        return principal, password_hash

    try:
        principal, _ = await run_in_threadpool(check)
    except TooManyAttempts as exc:
        await run_in_threadpool(audit, engine, None, "sign_in", outcome="rejected",
                                detail=f"throttled email={email[:254]} ip={ip}")
        minutes = max(1, -(-exc.retry_after // 60))
        message = (f"You have tried to sign in too many times. Wait {minutes} minute{'s' if minutes > 1 else ''} "
                   "and try again.")
        response = _sign_in_page(request, status=429, email=email, next_path=next_path,
                                 errors={"email": message}, summary=[{"text": message, "href": "#email"}])
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if principal is None:
        await run_in_threadpool(audit, engine, None, "sign_in", outcome="rejected",
                                detail=f"wrong credentials email={email[:254]} ip={ip}")
        return _sign_in_page(request, status=422, email=email, next_path=next_path,
                             errors={"email": WRONG_SIGN_IN},
                             summary=[{"text": WRONG_SIGN_IN, "href": "#email"}])
    request.scope.setdefault("state", {})["principal"] = principal
    await run_in_threadpool(audit, engine, principal, "sign_in", partnership_id=principal.partnership_id,
                            detail=f"ip={ip}")
    return RedirectResponse(next_path if next_path != "/" else HOME_BY_KIND.get(principal.kind, "/tasks"),
                            status_code=303)


@router.post("/sign-out")
def sign_out(request: Request, engine: DbEngine):
    principal = session_principal(request)
    if principal is not None:
        audit(engine, principal, "sign_out", partnership_id=principal.partnership_id)
    end_session(request, engine)  # the session's row is deleted: every copy of its cookie is dead
    return RedirectResponse("/sign-in?signed_out=1", status_code=303)
