#!/usr/bin/env python3
"""A local Azure Key Vault (secrets, REST api-version 7.x) over https, for tests.

No Key Vault emulator is installable here (shared/PEERS.md), so this is a
protocol-faithful stand-in written from the REST reference, and checked
against Microsoft's own Python client by tests/peers/azure_validate.py.
Python standard library only, plus `cryptography` for the throw-away CA.

What it serves, on https://127.0.0.1:PORT:

- The vault, with the service's shapes, status codes and error bodies
  (`{"error": {"code", "message", "innererror"}}`):
    PUT    /secrets/{name}                  set (a new version each time)
    GET    /secrets/{name}[/{version}]      get (latest, or a version)
    PATCH  /secrets/{name}[/{version}]      update attributes/tags/contentType
    GET    /secrets                         list (paginated with nextLink)
    GET    /secrets/{name}/versions         list versions (paginated)
    DELETE /secrets/{name}                  soft delete -> DeletedSecretBundle
    GET    /deletedsecrets[/{name}]         deleted secrets
    DELETE /deletedsecrets/{name}           purge (204)
    POST   /deletedsecrets/{name}/recover   recover
  Every call needs `?api-version=7.x`. Names match `^[0-9a-zA-Z-]{1,127}$`
  and are case-insensitive. Version ids are 32 hex digits; `created` and
  `updated` are whole seconds, as in the service. A deleted secret's name
  cannot be reused until it is purged or recovered (409, innererror
  `ObjectIsDeletedButRecoverable`). Lists return at most `--max-page-size`
  items per page (the service's maximum is 25) and a `nextLink` until the
  last page. A disabled version reads as 403 `SecretDisabled`.
- Bearer authentication with the service's challenge: a request without a
  valid token gets 401 and `WWW-Authenticate: Bearer
  authorization="https://login.microsoftonline.com/<tenant>",
  resource="https://vault.azure.net"`.
- A Microsoft identity platform token endpoint for the client-credentials
  grant, `POST /<tenant>/oauth2/v2.0/token` (`client_id`, `client_secret`,
  `scope=https://vault.azure.net/.default`), with AADSTS-style errors, and
  the tenant's OpenID metadata (`/<tenant>/v2.0/.well-known/openid-configuration`)
  that MSAL-based clients read first. Tokens last an hour.

Usage:
  azure_keyvault.py --dir DIR [--port 0] [--tenant T] [--client-id C]
                    [--client-secret S] [--access-token T] [--max-page-size N]

On start it writes DIR/ca.pem (the CA to trust), DIR/server.pem and
DIR/server.key, binds (port 0 picks a free one) and then writes the port
to DIR/port: wait for that file.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import ipaddress
import json
import os
import re
import secrets
import ssl
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
API_VERSION = re.compile(r"^7\.\d+(-preview)?$")
VAULT_RESOURCE = "https://vault.azure.net"
RECOVERY_LEVEL = "Recoverable+Purgeable"
RECOVERABLE_DAYS = 90
MAX_TAGS = 15


class KeyVaultError(Exception):
    """An error answer of the service."""

    def __init__(self, status: int, code: str, message: str, inner: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.inner = status, code, message, inner

    def body(self) -> dict:
        error = {"code": self.code, "message": self.message}
        if self.inner:
            error["innererror"] = {"code": self.inner}
        return {"error": error}


def not_found(name: str) -> KeyVaultError:
    return KeyVaultError(
        404,
        "SecretNotFound",
        f"A secret with (name/id) {name} was not found in this key vault. If you recently deleted "
        "this secret you may be able to recover it using the correct recovery command. For help "
        "resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182",
    )


class Vault:
    """The vault's state: secrets (each a list of versions, oldest first) and
    deleted secrets, keyed by lower-case name (names are case-insensitive)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.secrets: dict[str, dict] = {}
        self.deleted: dict[str, dict] = {}

    # -- helpers -----------------------------------------------------------

    @staticmethod
    def check_name(name: str) -> None:
        if not NAME.match(name):
            raise KeyVaultError(
                400,
                "BadParameter",
                f"The request URI contains an invalid name: {name}",
            )

    def live(self, name: str) -> dict:
        self.check_name(name)
        secret = self.secrets.get(name.lower())
        if secret is None:
            raise not_found(name)
        return secret

    @staticmethod
    def find_version(secret: dict, version: str | None) -> dict:
        if not version:
            return secret["versions"][-1]
        for v in secret["versions"]:
            if v["version"] == version.lower():
                return v
        raise not_found(f"{secret['name']}/{version}")

    @staticmethod
    def attributes(v: dict) -> dict:
        attrs = {
            "enabled": v["enabled"],
            "created": v["created"],
            "updated": v["updated"],
            "recoveryLevel": RECOVERY_LEVEL,
            "recoverableDays": RECOVERABLE_DAYS,
        }
        for key in ("nbf", "exp"):
            if v.get(key) is not None:
                attrs[key] = v[key]
        return attrs

    def bundle(self, base: str, secret: dict, v: dict, with_value: bool) -> dict:
        out = {
            "id": f"{base}/secrets/{secret['name']}/{v['version']}",
            "attributes": self.attributes(v),
            "tags": dict(v["tags"]),
        }
        if with_value:
            out["value"] = v["value"]
        if v.get("contentType") is not None:
            out["contentType"] = v["contentType"]
        return out

    def item(self, base: str, secret: dict, v: dict, with_version: bool) -> dict:
        out = {
            "id": f"{base}/secrets/{secret['name']}" + (f"/{v['version']}" if with_version else ""),
            "attributes": self.attributes(v),
            "tags": dict(v["tags"]),
        }
        if v.get("contentType") is not None:
            out["contentType"] = v["contentType"]
        return out

    def deleted_bundle(self, base: str, entry: dict, item: bool = False) -> dict:
        secret = entry["secret"]
        latest = secret["versions"][-1]
        out = self.item(base, secret, latest, False) if item else self.bundle(base, secret, latest, False)
        out.update(
            recoveryId=f"{base}/deletedsecrets/{secret['name']}",
            deletedDate=entry["deletedDate"],
            scheduledPurgeDate=entry["scheduledPurgeDate"],
        )
        return out

    @staticmethod
    def apply_update(v: dict, body: dict) -> None:
        tags = body.get("tags")
        if tags is not None:
            if not isinstance(tags, dict) or not all(isinstance(x, str) for kv in tags.items() for x in kv):
                raise KeyVaultError(400, "BadParameter", "Tags must be a map of strings to strings.")
            if len(tags) > MAX_TAGS:
                raise KeyVaultError(400, "BadParameter", f"The number of tags exceeds the maximum of {MAX_TAGS}.")
            v["tags"] = dict(tags)
        if "contentType" in body:
            v["contentType"] = body["contentType"]
        attrs = body.get("attributes") or {}
        if not isinstance(attrs, dict):
            raise KeyVaultError(400, "BadParameter", "Property attributes must be an object.")
        if "enabled" in attrs:
            if not isinstance(attrs["enabled"], bool):
                raise KeyVaultError(400, "BadParameter", "Property enabled must be a boolean.")
            v["enabled"] = attrs["enabled"]
        for key in ("nbf", "exp"):
            if key in attrs:
                v[key] = attrs[key]
        v["updated"] = int(time.time())

    # -- operations ----------------------------------------------------------

    def set(self, base: str, name: str, body: dict) -> dict:
        self.check_name(name)
        value = body.get("value")
        if not isinstance(value, str):
            raise KeyVaultError(400, "BadParameter", "Property 'value' is required and must be a string.")
        if len(value.encode()) > 25 * 1024:
            raise KeyVaultError(400, "BadParameter", "Secret value exceeds the maximum size of 25 KB.")
        with self.lock:
            if name.lower() in self.deleted:
                raise KeyVaultError(
                    409,
                    "Conflict",
                    f"Secret {name} is currently in a deleted but recoverable state, and its name cannot be "
                    "reused; in this state, the secret can only be recovered or purged.",
                    "ObjectIsDeletedButRecoverable",
                )
            secret = self.secrets.setdefault(name.lower(), {"name": name, "versions": []})
            now = int(time.time())
            v = {"version": uuid.uuid4().hex, "value": value, "enabled": True, "created": now,
                 "updated": now, "tags": {}, "contentType": None}
            self.apply_update(v, {k: body[k] for k in ("tags", "contentType", "attributes") if k in body})
            v["updated"] = now
            secret["versions"].append(v)
            return self.bundle(base, secret, v, True)

    def get(self, base: str, name: str, version: str | None) -> dict:
        with self.lock:
            secret = self.live(name)
            v = self.find_version(secret, version)
            if not v["enabled"]:
                raise KeyVaultError(403, "Forbidden", "Operation get is not allowed on a disabled secret.",
                                    "SecretDisabled")
            return self.bundle(base, secret, v, True)

    def update(self, base: str, name: str, version: str | None, body: dict) -> dict:
        with self.lock:
            secret = self.live(name)
            v = self.find_version(secret, version)
            self.apply_update(v, body)
            return self.bundle(base, secret, v, False)

    def list(self, base: str) -> list[dict]:
        with self.lock:
            return [self.item(base, s, s["versions"][-1], False)
                    for _, s in sorted(self.secrets.items())]

    def versions(self, base: str, name: str) -> list[dict]:
        with self.lock:
            secret = self.live(name)
            return [self.item(base, secret, v, True) for v in secret["versions"]]

    def delete(self, base: str, name: str) -> dict:
        with self.lock:
            secret = self.live(name)
            del self.secrets[name.lower()]
            now = int(time.time())
            entry = {"secret": secret, "deletedDate": now,
                     "scheduledPurgeDate": now + RECOVERABLE_DAYS * 86400}
            self.deleted[name.lower()] = entry
            return self.deleted_bundle(base, entry)

    def deleted_entry(self, name: str) -> dict:
        self.check_name(name)
        entry = self.deleted.get(name.lower())
        if entry is None:
            raise KeyVaultError(404, "SecretNotFound", f"Deleted Secret not found: {name}")
        return entry

    def get_deleted(self, base: str, name: str) -> dict:
        with self.lock:
            return self.deleted_bundle(base, self.deleted_entry(name))

    def list_deleted(self, base: str) -> list[dict]:
        with self.lock:
            return [self.deleted_bundle(base, e, item=True) for _, e in sorted(self.deleted.items())]

    def purge(self, name: str) -> None:
        with self.lock:
            self.deleted_entry(name)
            del self.deleted[name.lower()]

    def recover(self, base: str, name: str) -> dict:
        with self.lock:
            entry = self.deleted_entry(name)
            del self.deleted[name.lower()]
            secret = entry["secret"]
            self.secrets[name.lower()] = secret
            return self.bundle(base, secret, secret["versions"][-1], False)


class Identity:
    """The Microsoft identity platform, reduced to one tenant, one client and
    the client-credentials grant."""

    def __init__(self, tenant: str, client_id: str, client_secret: str, static_token: str | None):
        self.tenant, self.client_id, self.client_secret = tenant, client_id, client_secret
        self.tokens: dict[str, float] = {}
        if static_token:
            self.tokens[static_token] = float("inf")
        self.lock = threading.Lock()

    def valid(self, token: str) -> bool:
        with self.lock:
            return self.tokens.get(token, 0) > time.time()

    def token(self, tenant: str, form: dict[str, str]) -> tuple[int, dict]:
        def fail(status: int, error: str, description: str) -> tuple[int, dict]:
            return status, {"error": error, "error_description": description, "error_codes": [],
                            "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                            "trace_id": str(uuid.uuid4()), "correlation_id": str(uuid.uuid4())}

        if tenant.lower() != self.tenant.lower():
            return fail(400, "invalid_request", f"AADSTS90002: Tenant '{tenant}' not found.")
        if form.get("grant_type") != "client_credentials":
            return fail(400, "unsupported_grant_type",
                        "AADSTS70003: The app requested an unsupported grant type.")
        if form.get("client_id") != self.client_id:
            return fail(400, "unauthorized_client",
                        f"AADSTS700016: Application with identifier '{form.get('client_id')}' was not found "
                        f"in the directory '{self.tenant}'.")
        if not secrets.compare_digest(form.get("client_secret", ""), self.client_secret):
            return fail(401, "invalid_client",
                        "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the "
                        "request is the client secret value, not the client secret ID.")
        scopes = form.get("scope", "").split()
        if scopes != [f"{VAULT_RESOURCE}/.default"]:
            return fail(400, "invalid_scope",
                        f"AADSTS70011: The provided request must include a 'scope' input parameter. The provided "
                        f"value for the input parameter 'scope' is not valid. Expected {VAULT_RESOURCE}/.default.")
        token = "eyJ0eXAiOiJKV1QifQ.local-" + secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[token] = time.time() + 3600
        return 200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}


def make_handler(vault: Vault, identity: Identity, max_page: int):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def version_string(self) -> str:
            return "Microsoft-IIS/10.0"

        def log_message(self, fmt: str, *args) -> None:  # to stderr, one line per request
            sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

        # -- plumbing ----------------------------------------------------

        def send_json(self, status: int, body: dict | None, headers: dict | None = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            if body is not None:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-ms-keyvault-service-version", "1.9.0.0")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def read_body(self) -> bytes:
            # HTTP/1.1 clients may send any body chunked (hyper does for a
            # DELETE without Content-Length).
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                body = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return body
                    body += self.rfile.read(size)
                    self.rfile.readline()  # the CRLF after the chunk
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def base(self) -> str:
            return f"https://{self.headers.get('Host', '127.0.0.1')}"

        def handle_any(self, method: str) -> None:
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            parts = [p for p in url.path.split("/") if p]
            body = self.read_body()
            try:
                if self.identity_route(method, parts, body):
                    return
                self.vault_route(method, parts, query, body)
            except KeyVaultError as e:
                self.send_json(e.status, e.body())

        def do_GET(self) -> None:
            self.handle_any("GET")

        def do_PUT(self) -> None:
            self.handle_any("PUT")

        def do_POST(self) -> None:
            self.handle_any("POST")

        def do_PATCH(self) -> None:
            self.handle_any("PATCH")

        def do_DELETE(self) -> None:
            self.handle_any("DELETE")

        # -- identity ----------------------------------------------------

        def identity_route(self, method: str, parts: list[str], body: bytes) -> bool:
            if len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"] and method == "POST":
                form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
                status, answer = identity.token(parts[0], form)
                self.send_json(status, answer, {"Cache-Control": "no-store, no-cache"})
                return True
            if len(parts) == 4 and parts[1:] == ["v2.0", ".well-known", "openid-configuration"] and method == "GET":
                base, tenant = self.base(), parts[0]
                self.send_json(200, {
                    "token_endpoint": f"{base}/{tenant}/oauth2/v2.0/token",
                    "authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/authorize",
                    "issuer": f"{base}/{tenant}/v2.0",
                    "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt",
                                                              "client_secret_basic"],
                    "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                    "tenant_region_scope": "EU",
                })
                return True
            return False

        # -- vault -------------------------------------------------------

        def challenge(self) -> None:
            self.send_json(
                401,
                {"error": {"code": "Unauthorized",
                           "message": "AKV10000: Request is missing a Bearer or PoP token."}},
                {"WWW-Authenticate": f'Bearer authorization="https://login.microsoftonline.com/{identity.tenant}", '
                                     f'resource="{VAULT_RESOURCE}"'},
            )

        def page(self, items: list[dict], query: dict[str, str], path: str) -> dict:
            try:
                wanted = int(query.get("maxresults", "25"))
            except ValueError:
                raise KeyVaultError(400, "BadParameter", "maxresults must be an integer between 1 and 25.")
            if not 1 <= wanted <= 25:
                raise KeyVaultError(400, "BadParameter",
                                    "invalid maxresults: the value must be between 1 and 25.")
            size = min(wanted, max_page)
            token = query.get("$skiptoken")
            offset = 0
            if token:
                try:
                    padded = token + "=" * (-len(token) % 4)
                    offset = int(json.loads(base64.urlsafe_b64decode(padded))["offset"])
                except (ValueError, KeyError, TypeError):
                    raise KeyVaultError(400, "BadParameter", "The $skiptoken is not valid.")
            chunk = items[offset:offset + size]
            next_link = None
            if offset + size < len(items):
                skip = base64.urlsafe_b64encode(json.dumps({"offset": offset + size}).encode()).decode().rstrip("=")
                next_link = (f"{self.base()}{path}?api-version={query['api-version']}"
                             f"&$skiptoken={skip}&maxresults={wanted}")
            return {"value": chunk, "nextLink": next_link}

        def vault_route(self, method: str, parts: list[str], query: dict[str, str], body: bytes) -> None:
            header = self.headers.get("Authorization", "")
            token = header[7:].strip() if header.lower().startswith("bearer ") else ""
            if not token or not identity.valid(token):
                # Key Vault answers the challenge before looking at anything else.
                self.challenge()
                return
            api = query.get("api-version")
            if api is None:
                raise KeyVaultError(400, "BadParameter",
                                    "The api-version query parameter (?api-version=) is required for all requests.")
            if not API_VERSION.match(api):
                raise KeyVaultError(400, "BadParameter",
                                    f"The specified version ({api}) is not recognized. Consider using the "
                                    "latest supported version (7.4).")
            base = self.base()

            def json_body() -> dict:
                try:
                    parsed = json.loads(body or b"{}")
                except ValueError:
                    raise KeyVaultError(400, "BadParameter", "The request body is not valid JSON.")
                if not isinstance(parsed, dict):
                    raise KeyVaultError(400, "BadParameter", "The request body must be a JSON object.")
                return parsed

            route = (method, parts[0] if parts else "", len(parts))
            if route == ("GET", "secrets", 1):
                self.send_json(200, self.page(vault.list(base), query, "/secrets"))
            elif route == ("PUT", "secrets", 2):
                self.send_json(200, vault.set(base, parts[1], json_body()))
            elif route == ("GET", "secrets", 3) and parts[2] == "versions":
                self.send_json(200, self.page(vault.versions(base, parts[1]), query,
                                              f"/secrets/{parts[1]}/versions"))
            elif method == "GET" and route[1:] in (("secrets", 2), ("secrets", 3)):
                self.send_json(200, vault.get(base, parts[1], parts[2] if len(parts) == 3 else None))
            elif method == "PATCH" and route[1:] in (("secrets", 2), ("secrets", 3)):
                self.send_json(200, vault.update(base, parts[1], parts[2] if len(parts) == 3 else None,
                                                 json_body()))
            elif route == ("DELETE", "secrets", 2):
                self.send_json(200, vault.delete(base, parts[1]))
            elif route == ("GET", "deletedsecrets", 1):
                self.send_json(200, self.page(vault.list_deleted(base), query, "/deletedsecrets"))
            elif route == ("GET", "deletedsecrets", 2):
                self.send_json(200, vault.get_deleted(base, parts[1]))
            elif route == ("DELETE", "deletedsecrets", 2):
                vault.purge(parts[1])
                self.send_json(204, None)
            elif route == ("POST", "deletedsecrets", 3) and parts[2] == "recover":
                self.send_json(200, vault.recover(base, parts[1]))
            else:
                raise KeyVaultError(404, "NotFound", f"The requested operation {method} /{'/'.join(parts)} "
                                                     "is not supported by this vault.")

    return Handler


def write_certificates(directory: str) -> tuple[str, str]:
    """A throw-away CA and a server certificate for 127.0.0.1 and localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    cert_path, key_path = os.path.join(directory, "server.pem"), os.path.join(directory, "server.key")
    ca_path = os.path.join(directory, "ca.pem")
    if all(os.path.exists(p) for p in (cert_path, key_path, ca_path)):
        return cert_path, key_path
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tresor test Key Vault CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(ca_path + ".tmp", "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    os.replace(ca_path + ".tmp", ca_path)
    return cert_path, key_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", required=True, help="where ca.pem, the server key and `port` are written")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tenant", default="00000000-0000-0000-0000-0000000000aa")
    parser.add_argument("--client-id", default="00000000-0000-0000-0000-0000000000cc")
    parser.add_argument("--client-secret", default="local-client-secret")
    parser.add_argument("--access-token", help="a token accepted without the token endpoint")
    parser.add_argument("--max-page-size", type=int, default=25)
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    try:
        cert, key = write_certificates(args.dir)
    except ModuleNotFoundError:
        print("azure_keyvault.py: the Python package `cryptography` is not installed: run ./tests/setup.sh",
              file=sys.stderr)
        sys.exit(3)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    handler = make_handler(Vault(), Identity(args.tenant, args.client_id, args.client_secret, args.access_token),
                           max(1, min(args.max_page_size, 25)))
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    port_file = os.path.join(args.dir, "port")
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(port_file + ".tmp", port_file)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
