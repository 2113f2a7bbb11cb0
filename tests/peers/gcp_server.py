#!/usr/bin/env python3
"""Serve the GCP Secret Manager REST API v1 on 127.0.0.1 for the tests.

The API itself is cloudbox 0.2.3's Secret Manager emulator (installed by
tests/peers/gcp.sh). This launcher only works around its defects, each of
which makes it differ from the real service:

1. `cloudbox/core/store.py` does not import on Python 3.11: a method named
   `list` shadows the builtin inside its class body, so the annotation
   `list[str]` fails. The module is loaded here with
   `from __future__ import annotations` prepended (site-packages stay
   untouched).
2. `versions/{v}:access` is served only as POST; the real API (and every
   official client) uses GET. A GET route is added.
3. The real API resolves the alias `latest` to the most recently created
   version whatever its state, and accessing a version that is not ENABLED
   fails with 400 FAILED_PRECONDITION ("... is in DESTROYED state."):
   cloudbox picks the newest *enabled* version and answers 403. Both routes
   of `:access` (and version look-ups) follow the real API here.
4. Enabling or disabling a DESTROYED version fails with 400
   FAILED_PRECONDITION in the real API (destroy is terminal); so it does here.

It also adds what cloudbox lacks and the plugin's tests need:

- `--require-token`: every API call must carry `Authorization: Bearer T`
  where T is `--access-token` or a token issued by the token endpoint below
  (401 UNAUTHENTICATED otherwise, like the real API). Off by default, like
  cloudbox.
- Self-signed JWTs: with `--service-account-public-key`, a bearer token that
  is an RS256 JWT signed by that key is accepted too, as Google accepts a
  JWT signed by the service account itself (the official Python client sends
  one instead of calling the token endpoint).
- `POST /token`: a Google OAuth 2.0 token endpoint for service accounts
  (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`). The assertion
  must be an RS256 JWT signed by the key whose public half is in
  `--service-account-public-key` (PEM), with `aud` equal to
  `https://oauth2.googleapis.com/token` (as Google requires, whatever URL
  the assertion is posted to), `iat`/`exp` around now (at most an hour apart) and a `scope`.

Usage: gcp_server.py [--port PORT] [--port-file FILE] [--require-token]
                     [--access-token T] [--service-account-public-key FILE]
                     [--service-account-out FILE]

With `--port 0` (the default) a free port is picked; `--port-file` receives
the port once the server accepts connections. `--service-account-out`
writes a fresh service-account JSON key file (token_uri: this server's
token endpoint) whose JWTs the server then accepts.
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import json
import os
import secrets
import socket
import sys
import time
from urllib.parse import parse_qs


def _missing(what: str) -> None:
    print(f"gcp_server.py: {what} is not installed: run ./tests/setup.sh", file=sys.stderr)
    sys.exit(3)


def load_cloudbox_store_with_future_annotations() -> None:
    """Workaround 1: import cloudbox.core.store with postponed annotations."""
    name = "cloudbox.core.store"
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError:
        _missing("cloudbox==0.2.3")
    if spec is None or spec.origin is None:
        _missing("cloudbox==0.2.3")
    with open(spec.origin, encoding="utf-8") as f:
        source = "from __future__ import annotations\n" + f.read()
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    exec(compile(source, spec.origin, "exec"), module.__dict__)


def build_app(args: argparse.Namespace):
    load_cloudbox_store_with_future_annotations()
    try:
        from fastapi import Request
        from fastapi.responses import JSONResponse
        from starlette.routing import Route
        from cloudbox.services.secretmanager import app as sm
    except ModuleNotFoundError as e:
        _missing(e.name or "a Python package")

    app = sm.app
    store = sm._store

    def error(code: int, status: str, message: str) -> JSONResponse:
        return JSONResponse(
            status_code=code,
            content={"error": {"code": code, "message": message, "status": status}},
        )

    # Workaround 3: `latest` is the most recently created version, in any state.
    original_resolve = sm._resolve_version

    def resolve_version(secret_name: str, version_id: str):
        if version_id != "latest":
            return original_resolve(secret_name, version_id)
        prefix = f"{secret_name}/versions/"
        numbered = []
        for key in store().keys("versions"):
            if key.startswith(prefix):
                try:
                    numbered.append((int(key[len(prefix):]), key))
                except ValueError:
                    pass
        return max(numbered)[1] if numbered else None

    sm._resolve_version = resolve_version

    async def access(request: Request):
        p = request.path_params
        secret_name = f"projects/{p['project']}/secrets/{p['secret_id']}"
        if not store().exists("secrets", secret_name):
            return error(404, "NOT_FOUND", f"Secret [{secret_name}] not found or has no versions.")
        key = resolve_version(secret_name, p["version_id"])
        if key is None:
            return error(404, "NOT_FOUND", f"Secret Version [{secret_name}/versions/{p['version_id']}] not found.")
        version = store().get("versions", key) or {}
        state = version.get("state", "ENABLED")
        if state != "ENABLED":
            return error(400, "FAILED_PRECONDITION", f"Secret Version [{key}] is in {state} state.")
        return JSONResponse({"name": key, "payload": {"data": store().get("payloads", key) or ""}})

    async def change_state(request: Request, target: str):
        p = request.path_params
        secret_name = f"projects/{p['project']}/secrets/{p['secret_id']}"
        key = resolve_version(secret_name, p["version_id"])
        if key is None:
            return error(404, "NOT_FOUND", f"Secret Version [{secret_name}/versions/{p['version_id']}] not found.")
        if (store().get("versions", key) or {}).get("state") == "DESTROYED":
            # Workaround 4: destroy is terminal.
            return error(400, "FAILED_PRECONDITION", "SecretVersion.state is already DESTROYED.")
        result = sm._set_version_state(p["project"], p["secret_id"], key.rsplit("/", 1)[1], target)
        if target == "DESTROYED":
            store().delete("payloads", key)
        return JSONResponse(result)

    # Workarounds 2 to 4: `:access` over GET (and POST) with the real
    # semantics, and state changes that respect DESTROYED. Cloudbox's own
    # routes for these paths are removed so that ours are the ones matched.
    version_path = "/v1/projects/{project}/secrets/{secret_id}/versions/{version_id}"
    targets = {"enable": "ENABLED", "disable": "DISABLED", "destroy": "DESTROYED"}
    ours = {f"{version_path}:access"} | {f"{version_path}:{a}" for a in targets}
    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) not in ours]
    app.router.routes.insert(0, Route(f"{version_path}:access", access, methods=["GET", "POST"]))
    for action, target in targets.items():

        async def handler(request: Request, target: str = target):
            return await change_state(request, target)

        app.router.routes.insert(0, Route(f"{version_path}:{action}", handler, methods=["POST"]))

    issued: dict[str, float] = {}
    if args.access_token:
        issued[args.access_token] = float("inf")
    public_key = args.generated_public_key
    if args.service_account_public_key:
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        with open(args.service_account_public_key, "rb") as f:
            public_key = load_pem_public_key(f.read())

    def self_signed_jwt_ok(token: str) -> bool:
        # Google also accepts a JWT signed by the service account itself as
        # the bearer token ("self-signed JWT", which the official clients
        # send instead of asking the token endpoint).
        return token.count(".") == 2 and check_assertion(token, public_key, self_signed=True) is None

    @app.middleware("http")
    async def require_token(request: Request, call_next):
        if args.require_token and request.url.path.startswith("/v1/"):
            header = request.headers.get("authorization", "")
            token = header[7:] if header.lower().startswith("bearer ") else ""
            if issued.get(token, 0) < time.time() and not self_signed_jwt_ok(token):
                return error(
                    401,
                    "UNAUTHENTICATED",
                    "Request is missing required authentication credential. Expected OAuth 2 access token.",
                )
        return await call_next(request)

    async def token(request: Request):
        form = {k: v[-1] for k, v in parse_qs((await request.body()).decode()).items()}
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return JSONResponse(status_code=400, content={"error": "unsupported_grant_type"})
        problem = check_assertion(form.get("assertion", ""), public_key, self_signed=False)
        if problem:
            return JSONResponse(
                status_code=400,
                content={"error": "invalid_grant", "error_description": problem},
            )
        access_token = "ya29.local-" + secrets.token_urlsafe(24)
        issued[access_token] = time.time() + 3600
        print(f"token endpoint: issued access token #{len(issued)}", file=sys.stderr, flush=True)
        return JSONResponse({"access_token": access_token, "expires_in": 3599, "token_type": "Bearer"})

    app.router.routes.insert(0, Route("/token", token, methods=["POST"]))

    return app


# Google's token endpoint wants this `aud` in every JWT-bearer assertion, even
# when the assertion is sent to another token_uri (google-auth does the same).
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def check_assertion(assertion: str, public_key, self_signed: bool) -> str | None:
    """Why the service-account JWT is refused, or None when it is good.

    `self_signed` is true for a JWT presented directly as the bearer token,
    false for the assertion of a JWT-bearer grant at the token endpoint.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    if public_key is None:
        return "this server was started without --service-account-public-key"
    parts = assertion.split(".")
    if len(parts) != 3:
        return "the assertion is not a JWT"
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
        signature = b64url_decode(parts[2])
    except ValueError:
        return "the assertion is not a well-formed JWT"
    if header.get("alg") != "RS256":
        return "alg must be RS256"
    try:
        public_key.verify(
            signature, f"{parts[0]}.{parts[1]}".encode(), padding.PKCS1v15(), hashes.SHA256()
        )
    except InvalidSignature:
        return "Invalid JWT Signature."
    now = time.time()
    if self_signed:
        if not claims.get("iss") or not (claims.get("aud") or claims.get("scope")):
            return "Invalid JWT: iss and aud or scope are required"
    elif claims.get("aud") != GOOGLE_TOKEN_AUDIENCE:
        return f"Invalid JWT: aud must be {GOOGLE_TOKEN_AUDIENCE}"
    elif not claims.get("iss") or not claims.get("scope"):
        return "Invalid JWT: iss and scope are required"
    iat, exp = claims.get("iat", 0), claims.get("exp", 0)
    if not (iat - 300 <= now <= exp + 300) or exp - iat > 3600:
        return "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe."
    return None


def make_service_account(path: str, port: int):
    """Writes a fresh service-account JSON key file whose `token_uri` is this
    server's token endpoint; returns its public key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    info = {
        "type": "service_account",
        "project_id": "tresor-test",
        "private_key_id": secrets.token_hex(20),
        "private_key": key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        "client_email": "tresor-test@tresor-test.iam.gserviceaccount.com",
        "client_id": str(secrets.randbelow(10**20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": f"http://127.0.0.1:{port}/token",
    }
    with open(path + ".tmp", "w") as f:
        json.dump(info, f)
    os.replace(path + ".tmp", path)
    return key.public_key()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0 (the default) picks a free port")
    parser.add_argument("--port-file", help="where to write the port once listening")
    parser.add_argument("--require-token", action="store_true")
    parser.add_argument("--access-token")
    parser.add_argument("--service-account-public-key")
    parser.add_argument("--service-account-out", help="write a fresh service-account key file here")
    args = parser.parse_args()
    # Bind first, so that port 0 works and the key file can name the port;
    # connections wait in the backlog until uvicorn serves them.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(128)
    args.generated_public_key = None
    if args.service_account_out:
        try:
            args.generated_public_key = make_service_account(args.service_account_out, sock.getsockname()[1])
        except ModuleNotFoundError:
            _missing("cryptography")
    app = build_app(args)
    try:
        import uvicorn
    except ModuleNotFoundError:
        _missing("uvicorn")
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(str(sock.getsockname()[1]))
        os.replace(args.port_file + ".tmp", args.port_file)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


if __name__ == "__main__":
    main()
