"""A codec server for the Temporal UI: it decrypts the payloads the UI shows (and encrypts what it sends), per
Temporal's codec-server protocol (``POST /encode``, ``POST /decode``, body ``{"payloads": [...]}`` in the
protobuf JSON form of ``temporal.api.common.v1.Payloads``).

    python -m sgflow.codec_server [--port 8888] [--ui-origin http://127.0.0.1:8080]

It holds the keys that open every case's data, so it listens on the loopback interface only (it refuses any
other address) and answers only:

* requests whose ``Host`` is ``127.0.0.1`` or ``localhost`` (a web page cannot reach it by DNS rebinding);
* requests with no ``Origin`` or with the Temporal UI's origin (``--ui-origin``), and CORS allows that origin
  alone, so no other web page open in the operator's browser can use it.

It has no login of its own: the Temporal UI can only send the user's token to a codec server when the UI itself
has a login (OIDC), and ours has none. Run it on the operator's own machine, next to the browser and the SSH
tunnel to the UI (docs/production.md), never on a shared host.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.api.common.v1 import Payloads

from safeguarding.payload_codec import EncryptionCodec, PayloadDecryptionError, PayloadKeys

MAX_BODY = 8 * 1024 * 1024  # a page of the UI's payloads; Temporal's own limit for one payload is 2 MB
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]"]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_codec_app(keys: PayloadKeys, ui_origin: str) -> Starlette:
    codec = EncryptionCodec(keys)
    origin = ui_origin.rstrip("/")
    origins = {origin}
    for a, b in (("//127.0.0.1:", "//localhost:"), ("//localhost:", "//127.0.0.1:")):
        if a in origin:  # the UI's origin is whichever of the two names the operator typed
            origins.add(origin.replace(a, b))

    async def handle(request: Request, transform) -> Response:
        sent_origin = request.headers.get("origin")
        if sent_origin is not None and sent_origin.rstrip("/") not in origins:
            return _error(403, f"requests from {sent_origin} are refused; only the Temporal UI at {origin} may call")
        declared = request.headers.get("content-length", "")
        if declared.isdecimal() and int(declared) > MAX_BODY:
            return _error(413, f"body over {MAX_BODY // 1024 // 1024} MB")
        body = await request.body()
        if len(body) > MAX_BODY:
            return _error(413, f"body over {MAX_BODY // 1024 // 1024} MB")
        try:
            payloads = json_format.Parse(body or b"{}", Payloads())
        except (json_format.ParseError, DecodeError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            return _error(400, f"the body is not a Payloads JSON object ({str(exc).splitlines()[0][:200]})")
        try:
            result = transform(payloads.payloads)
        except PayloadDecryptionError as exc:
            return _error(400, str(exc))
        return Response(json_format.MessageToJson(Payloads(payloads=result)), media_type="application/json")

    async def encode(request: Request) -> Response:
        return await handle(request, codec.encrypt)

    async def decode(request: Request) -> Response:
        return await handle(request, codec.decrypt)

    return Starlette(
        routes=[Route("/encode", encode, methods=["POST"]), Route("/decode", decode, methods=["POST"]),
                # the CLI's --codec-endpoint 'http://127.0.0.1:8888/{namespace}' form
                Route("/{namespace}/encode", encode, methods=["POST"]),
                Route("/{namespace}/decode", decode, methods=["POST"])],
        middleware=[
            Middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost", "::1", "[::1]"]),
            Middleware(CORSMiddleware, allow_origins=sorted(origins), allow_methods=["POST"],
                       allow_headers=["content-type", "x-namespace"], allow_credentials=False, max_age=600),
        ],
    )


def check_loopback(host: str) -> str:
    """The address to bind, if it is a loopback one; anything else is refused in one line."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    raise SystemExit(f"sgflow codec server: error: --host {host} is not a loopback address; the codec server holds "
                     "the keys to every case and listens on 127.0.0.1 only (reach it through an SSH tunnel)")


def main(argv: list[str] | None = None) -> None:
    from safeguarding.payload_codec import load_keys
    from safeguarding.settings import SettingsError, get_settings

    parser = argparse.ArgumentParser(prog="python -m sgflow.codec_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8888, help="port (default 8888)")
    parser.add_argument("--ui-origin", default=None,
                        help="origin of the Temporal UI that may call it (default: the UI `sgflow up` starts, "
                             "http://127.0.0.1:<SGFLOW_TEMPORAL_UI_PORT>)")
    args = parser.parse_args(argv)
    host = check_loopback(args.host)
    try:
        settings = get_settings()
        keys = load_keys(settings, create=False)  # a new key here would open nothing
    except SettingsError as exc:
        raise SystemExit(f"sgflow codec server: error: {exc}") from None
    import uvicorn

    origin = args.ui_origin or settings.temporal_ui_url
    print(f"codec server for the Temporal UI at {origin}: http://{host}:{args.port} "
          f"(set it as the UI's codec endpoint)", file=sys.stderr, flush=True)
    uvicorn.run(create_codec_app(keys, origin), host=host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
