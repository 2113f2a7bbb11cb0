#!/usr/bin/env python3
"""Check tests/peers/gcp_server.py against Google's official clients.

Starts the launcher on a free port (with tokens required and a throw-away
service-account key), then drives it with `google-cloud-secret-manager`
(REST transport) authenticated by `google-auth` service-account credentials
whose `token_uri` points at the launcher's token endpoint: every call the
official client makes goes through the JWT-bearer exchange first.

Run once after ./tests/setup.sh (it needs `pip install
google-cloud-secret-manager`, which the test suite itself does not):

    python3 tests/peers/gcp_validate.py

Prints one line per check and exits non-zero on the first failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = "tresor-validate"


def check(label: str, condition: bool, detail: object = "") -> None:
    print(f"{'ok  ' if condition else 'FAIL'} {label}{f': {detail}' if detail != '' else ''}")
    if not condition:
        sys.exit(1)


def main() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from google.api_core import exceptions
    from google.api_core.client_options import ClientOptions
    from google.cloud import secretmanager
    from google.oauth2 import service_account

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    work = tempfile.mkdtemp(prefix="gcp-validate-")
    public_pem = os.path.join(work, "sa.pub.pem")
    with open(public_pem, "wb") as f:
        f.write(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    port_file = os.path.join(work, "port")
    server = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "gcp_server.py"), "--port-file", port_file,
         "--require-token", "--service-account-public-key", public_pem],
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            if os.path.exists(port_file):
                break
            time.sleep(0.05)
        else:
            check("server starts", False)
        base = f"http://127.0.0.1:{open(port_file).read().strip()}"

        private_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        info = {
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": "local-key-1",
            "private_key": private_pem,
            "client_email": f"tresor@{PROJECT}.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": f"{base}/token",
        }
        credentials = service_account.Credentials.from_service_account_info(
            info, scopes=["https://www.googleapis.com/auth/cloud-platform"]
        )
        client = secretmanager.SecretManagerServiceClient(
            credentials=credentials,
            transport="rest",
            client_options=ClientOptions(api_endpoint=base),
        )
        parent = f"projects/{PROJECT}"

        # Without a token the API refuses (401), like the real one.
        try:
            urllib.request.urlopen(f"{base}/v1/{parent}/secrets")
            check("unauthenticated call refused", False)
        except urllib.error.HTTPError as e:
            check("unauthenticated call refused", e.code == 401, e.code)

        secret = client.create_secret(
            request={
                "parent": parent,
                "secret_id": "apps_db",
                "secret": {"replication": {"automatic": {}}, "labels": {"team": "core"}},
            }
        )
        check("create_secret (self-signed service-account JWT)", secret.name == f"{parent}/secrets/apps_db", secret.name)
        check("labels kept", dict(secret.labels) == {"team": "core"}, dict(secret.labels))
        try:
            client.create_secret(
                request={"parent": parent, "secret_id": "apps_db", "secret": {"replication": {"automatic": {}}}}
            )
            check("duplicate create refused", False)
        except exceptions.Conflict as e:  # HTTP 409, status ALREADY_EXISTS
            check("duplicate create -> 409 ALREADY_EXISTS", True, e.message)

        v1 = client.add_secret_version(request={"parent": secret.name, "payload": {"data": b"one"}})
        v2 = client.add_secret_version(request={"parent": secret.name, "payload": {"data": b"\x00two\xff"}})
        check("add_secret_version", v1.name.endswith("/versions/1") and v2.name.endswith("/versions/2"), v2.name)
        got = client.access_secret_version(request={"name": f"{secret.name}/versions/latest"})
        check("access latest (GET :access) returns binary payload", got.payload.data == b"\x00two\xff", got.name)
        got = client.access_secret_version(request={"name": v1.name})
        check("access version 1", got.payload.data == b"one")

        for i in range(3):
            client.create_secret(
                request={"parent": parent, "secret_id": f"page-{i}", "secret": {"replication": {"automatic": {}}}}
            )
        pager = client.list_secrets(request={"parent": parent, "page_size": 2})
        names = [s.name.rsplit("/", 1)[1] for s in pager]
        check("list_secrets follows nextPageToken", names == ["apps_db", "page-0", "page-1", "page-2"], names)

        versions = [v.name.rsplit("/", 1)[1] for v in client.list_secret_versions(request={"parent": secret.name, "page_size": 1})]
        check("list_secret_versions", sorted(versions) == ["1", "2"], versions)

        client.disable_secret_version(request={"name": v2.name})
        try:
            client.access_secret_version(request={"name": f"{secret.name}/versions/latest"})
            check("latest is the newest version even when disabled", False)
        except exceptions.BadRequest as e:  # 400 FAILED_PRECONDITION
            check("access latest when it is disabled -> 400 FAILED_PRECONDITION", True, e.message)
        client.enable_secret_version(request={"name": v2.name})
        check("enable restores it", client.access_secret_version(request={"name": v2.name}).payload.data == b"\x00two\xff")

        destroyed = client.destroy_secret_version(request={"name": v1.name})
        check("destroy_secret_version", destroyed.state.name == "DESTROYED", destroyed.state.name)
        try:
            client.access_secret_version(request={"name": v1.name})
            check("destroyed version unreadable", False)
        except exceptions.BadRequest as e:  # 400 FAILED_PRECONDITION
            check("access destroyed -> 400 FAILED_PRECONDITION", True, e.message)
        try:
            client.enable_secret_version(request={"name": v1.name})
            check("destroy is terminal", False)
        except exceptions.BadRequest:  # 400 FAILED_PRECONDITION
            check("enable destroyed -> 400 FAILED_PRECONDITION", True)

        updated = client.update_secret(
            request={"secret": {"name": secret.name, "labels": {"team": "ops"}}, "update_mask": {"paths": ["labels"]}}
        )
        check("update_secret labels", dict(updated.labels) == {"team": "ops"}, dict(updated.labels))

        client.delete_secret(request={"name": secret.name})
        try:
            client.access_secret_version(request={"name": f"{secret.name}/versions/latest"})
            check("deleted secret unreadable", False)
        except exceptions.NotFound:
            check("access after delete_secret -> NotFound (404)", True)
        try:
            client.get_secret(request={"name": f"{parent}/secrets/never"})
            check("missing secret", False)
        except exceptions.NotFound:
            check("get_secret missing -> NotFound (404)", True)

        # The JWT-bearer exchange at token_uri (what the Tresor plugin does),
        # through google-auth's own implementation.
        import google.auth.transport.requests
        import google.oauth2.credentials

        exchanging = credentials.with_always_use_jwt_access(False)
        exchanging.refresh(google.auth.transport.requests.Request())
        check("token_uri exchange (JWT bearer grant)", bool(exchanging.token) and exchanging.expiry is not None,
              f"expires {exchanging.expiry}")
        by_token = secretmanager.SecretManagerServiceClient(
            credentials=google.oauth2.credentials.Credentials(exchanging.token),
            transport="rest",
            client_options=ClientOptions(api_endpoint=base),
        )
        names = [s.name.rsplit("/", 1)[1] for s in by_token.list_secrets(request={"parent": parent})]
        check("calls with the exchanged access token", names == ["page-0", "page-1", "page-2"], names)

        # A JWT signed by another key is refused by the token endpoint.
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        info["private_key"] = other.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        bad = secretmanager.SecretManagerServiceClient(
            credentials=service_account.Credentials.from_service_account_info(
                info, scopes=["https://www.googleapis.com/auth/cloud-platform"]
            ),
            transport="rest",
            client_options=ClientOptions(api_endpoint=base),
        )
        try:
            bad.get_secret(request={"name": f"{parent}/secrets/page-0"})
            check("self-signed JWT of a foreign key refused", False)
        except exceptions.Unauthorized:
            check("self-signed JWT of a foreign key -> 401", True)
        foreign = service_account.Credentials.from_service_account_info(
            info, scopes=["https://www.googleapis.com/auth/cloud-platform"]
        ).with_always_use_jwt_access(False)
        try:
            foreign.refresh(google.auth.transport.requests.Request())
            check("token exchange with a foreign key refused", False)
        except Exception as e:  # google.auth.exceptions.RefreshError
            check("token exchange with a foreign key -> invalid_grant", "invalid_grant" in str(e), type(e).__name__)
        print(json.dumps({"validated": True, "endpoint": base}))
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
