#!/usr/bin/env python3
"""Check tests/peers/azure_keyvault.py against Microsoft's official clients.

Starts the local vault (pages of at most 2 items, so every listing spans
several pages) and drives it with `azure-keyvault-secrets`' SecretClient,
authenticated by `azure-identity`'s ClientSecretCredential against the
server's own token endpoint. The official client only talks https, learns
the tenant and scope from the vault's first 401 challenge, and is told to
trust the throw-away CA (`connection_verify`) and to accept a challenge
resource that is not the vault's own domain (`verify_challenge_resource`).

Run once after ./tests/setup.sh (it needs `pip install
azure-keyvault-secrets azure-identity`, which the test suite itself does not):

    python3 tests/peers/azure_validate.py

Prints one line per check and exits non-zero on the first failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TENANT = "72f988bf-0000-4000-8000-00000000c0de"
CLIENT_ID = "3f2a7c1e-0000-4000-8000-0000000c11e7"
CLIENT_SECRET = "validate-secret"


def check(label: str, condition: bool, detail: object = "") -> None:
    print(f"{'ok  ' if condition else 'FAIL'} {label}{f': {detail}' if detail != '' else ''}")
    if not condition:
        sys.exit(1)


def main() -> None:
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceExistsError, \
        ResourceNotFoundError
    from azure.identity import ClientSecretCredential
    from azure.keyvault.secrets import SecretClient

    work = tempfile.mkdtemp(prefix="azure-validate-")
    server = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "azure_keyvault.py"), "--dir", work, "--tenant", TENANT,
         "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET, "--max-page-size", "2"],
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = os.path.join(work, "port")
        for _ in range(100):
            if os.path.exists(port_file):
                break
            time.sleep(0.1)
        else:
            check("server starts", False)
        base = f"https://127.0.0.1:{open(port_file).read().strip()}"
        ca = os.path.join(work, "ca.pem")

        credential = ClientSecretCredential(
            TENANT, CLIENT_ID, CLIENT_SECRET,
            authority=base,
            disable_instance_discovery=True,
            connection_verify=ca,
        )
        # Plain http is refused by the client itself.
        try:
            SecretClient(vault_url=base.replace("https", "http"), credential=credential,
                         verify_challenge_resource=False).get_secret("x")
            check("http vault_url refused by the client", False)
        except Exception as e:  # azure.core.exceptions.ServiceRequestError
            check("the official client refuses a non-https vault_url", "TLS" in str(e) or "https" in str(e),
                  f"{type(e).__name__}: {e}")

        client = SecretClient(vault_url=base, credential=credential, connection_verify=ca,
                              verify_challenge_resource=False, api_version="7.4")

        first = client.set_secret("apps--db", "one", tags={"team": "core"}, content_type="text/plain")
        check("set_secret (after the 401 challenge and a client-credentials token)",
              first.value == "one" and first.name == "apps--db" and len(first.properties.version) == 32,
              first.id)
        check("tags and contentType kept", first.properties.tags == {"team": "core"}
              and first.properties.content_type == "text/plain")
        check("created/updated are datetimes", first.properties.created_on is not None,
              first.properties.created_on)
        second = client.set_secret("apps--db", "two \u00e9\u00e8")
        check("second version", second.properties.version != first.properties.version)
        latest = client.get_secret("apps--db")
        check("get latest", latest.value == "two \u00e9\u00e8" and latest.properties.version == second.properties.version)
        old = client.get_secret("APPS--DB", first.properties.version)
        check("get by version, names case-insensitive", old.value == "one")
        try:
            client.get_secret("apps--db", "0" * 32)
            check("unknown version", False)
        except ResourceNotFoundError as e:
            check("unknown version -> 404 SecretNotFound", e.error.code == "SecretNotFound", e.status_code)

        for i in range(4):
            client.set_secret(f"page-{i}", str(i))
        names = [p.name for p in client.list_properties_of_secrets(max_page_size=25)]
        check("list_properties_of_secrets follows nextLink over 3 pages", names == [
            "apps--db", "page-0", "page-1", "page-2", "page-3"], names)
        versions = [p.version for p in client.list_properties_of_secret_versions("apps--db")]
        check("list_properties_of_secret_versions", sorted(versions) == sorted(
            [first.properties.version, second.properties.version]), len(versions))

        updated = client.update_secret_properties("apps--db", first.properties.version, enabled=False,
                                                  tags={"team": "ops"})
        check("update_secret_properties (PATCH)", updated.enabled is False and updated.tags == {"team": "ops"})
        try:
            client.get_secret("apps--db", first.properties.version)
            check("disabled version unreadable", False)
        except HttpResponseError as e:
            check("get disabled -> 403 Forbidden/SecretDisabled", e.status_code == 403, e.message.splitlines()[0])

        poller = client.begin_delete_secret("apps--db")
        deleted = poller.result()
        check("begin_delete_secret (soft delete, polls /deletedsecrets)",
              deleted.name == "apps--db" and deleted.recovery_id.endswith("/deletedsecrets/apps--db")
              and deleted.scheduled_purge_date is not None, deleted.recovery_id)
        try:
            client.get_secret("apps--db")
            check("deleted secret unreadable", False)
        except ResourceNotFoundError:
            check("get after delete -> 404", True)
        try:
            client.set_secret("apps--db", "three")
            check("name of a deleted secret is reserved", False)
        except ResourceExistsError as e:
            check("set on a deleted name -> 409 ObjectIsDeletedButRecoverable", e.status_code == 409,
                  e.message.splitlines()[0])
        deleted_names = [d.name for d in client.list_deleted_secrets()]
        check("list_deleted_secrets", deleted_names == ["apps--db"], deleted_names)
        recovered = client.begin_recover_deleted_secret("apps--db").result()
        check("begin_recover_deleted_secret", recovered.name == "apps--db")
        check("recovered keeps its versions", client.get_secret("apps--db").value == "two \u00e9\u00e8")
        client.begin_delete_secret("apps--db").result()
        client.purge_deleted_secret("apps--db")
        check("purge_deleted_secret, then the name is free again",
              client.set_secret("apps--db", "fresh").value == "fresh")

        bad = ClientSecretCredential(TENANT, CLIENT_ID, "wrong", authority=base, disable_instance_discovery=True,
                                     connection_verify=ca)
        try:
            SecretClient(vault_url=base, credential=bad, connection_verify=ca,
                         verify_challenge_resource=False).get_secret("page-0")
            check("wrong client secret refused", False)
        except ClientAuthenticationError as e:
            check("wrong client secret -> invalid_client (AADSTS7000215)", "AADSTS7000215" in str(e))
        print('{"validated": true, "vault": "%s"}' % base)
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
