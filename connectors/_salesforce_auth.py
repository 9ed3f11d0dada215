"""Salesforce sessions without a browser: client credentials, JWT bearer, or a plain access token.

simple-salesforce hard-codes ``https://{domain}.salesforce.com`` as its login host, so the connector asks the
configured ``login_url`` for a token itself (with the same CA-trusting session it uses for the API) and then
runs simple-salesforce in "direct" mode (``instance_url`` + ``session_id``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jwt
import requests
from requests.adapters import HTTPAdapter

from connectors.errors import AuthError, RetriableError

TAuthMode = Literal["token", "client_credentials", "jwt"]
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: Salesforce accepts assertions that expire at most 3 minutes ahead
JWT_LIFETIME_S = 180


class CAFileAdapter(HTTPAdapter):
    """Verify TLS against one CA file whatever the environment says.

    requests merges ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` into each request's ``verify``, which beats
    ``Session.verify``; the adapter has the last word and keeps the environment's proxy settings.
    """

    def __init__(self, ca_file: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ca_file = ca_file

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("verify") is not False:
            kwargs["verify"] = self.ca_file
        return super().send(request, *args, **kwargs)


def make_session(ca_file: str | None = None) -> requests.Session:
    """A session for the org's API and token endpoint; trusts ``ca_file`` for https when given."""
    session = requests.Session()
    if ca_file:
        session.mount("https://", CAFileAdapter(ca_file))
    return session


@dataclass(frozen=True)
class SalesforceToken:
    access_token: str
    instance_url: str


@dataclass(frozen=True)
class SalesforceAuth:
    """How to obtain a session; ``mode`` is derived from which credentials are configured."""

    mode: TAuthMode
    login_url: str
    instance_url: str | None = None
    access_token: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    username: str | None = None
    private_key_file: str | None = None
    timeout_s: float = 30

    @classmethod
    def from_settings(
        cls,
        *,
        login_url: str,
        instance_url: str | None = None,
        access_token: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        username: str | None = None,
        private_key_file: str | None = None,
        timeout_s: float = 30,
    ) -> SalesforceAuth:
        """Pick the flow: JWT when a key file is set, client credentials with a secret, else the token."""
        mode: TAuthMode
        if private_key_file and client_id and username:
            mode = "jwt"
        elif client_id and client_secret:
            mode = "client_credentials"
        elif access_token and instance_url:
            mode = "token"
        else:
            msg = (
                "salesforce: configure client_id + client_secret (client credentials), client_id + username + "
                "private_key_file (JWT bearer), or access_token + instance_url"
            )
            raise AuthError(msg)
        return cls(
            mode=mode,
            login_url=login_url.rstrip("/"),
            instance_url=instance_url,
            access_token=access_token,
            client_id=client_id,
            client_secret=client_secret,
            username=username,
            private_key_file=private_key_file,
            timeout_s=timeout_s,
        )

    @property
    def can_renew(self) -> bool:
        return self.mode != "token"

    def token_url(self) -> str:
        return f"{self.login_url}/services/oauth2/token"

    def assertion(self) -> str:
        """An RS256 JWT: iss = consumer key, sub = username, aud = the login URL, exp <= now + 3 min."""
        assert self.private_key_file and self.client_id and self.username
        key = Path(self.private_key_file).read_text(encoding="utf-8")
        claims = {
            "iss": self.client_id,
            "sub": self.username,
            "aud": self.login_url,
            "exp": int(time.time()) + JWT_LIFETIME_S,
        }
        return jwt.encode(claims, key, algorithm="RS256")

    def fetch(self, session: requests.Session) -> SalesforceToken:
        """A fresh session token.

        :raises AuthError: the login endpoint refused the credentials (or only a fixed token is configured).
        :raises RetriableError: the login endpoint is unreachable or failing (5xx).
        """
        if self.mode == "token":
            assert self.access_token and self.instance_url
            return SalesforceToken(self.access_token, self.instance_url)
        auth: tuple[str, str] | None = None
        if self.mode == "client_credentials":
            assert self.client_id and self.client_secret
            data = {"grant_type": "client_credentials"}
            auth = (self.client_id, self.client_secret)
        else:
            data = {"grant_type": JWT_GRANT, "assertion": self.assertion()}
        try:
            response = session.post(self.token_url(), data=data, auth=auth, timeout=self.timeout_s)
        except requests.RequestException as exc:
            msg = f"Salesforce login endpoint {self.token_url()} unreachable: {type(exc).__name__}: {exc}"
            raise RetriableError(msg) from exc
        if response.status_code >= 500:
            msg = f"Salesforce login endpoint answered {response.status_code}"
            raise RetriableError(msg, status=response.status_code)
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or not isinstance(body, dict) or "access_token" not in body:
            error = body.get("error", "") if isinstance(body, dict) else ""
            detail = body.get("error_description", "") if isinstance(body, dict) else ""
            msg = f"Salesforce refused the {self.mode} login ({response.status_code} {error}: {detail})"
            raise AuthError(msg, status=response.status_code)
        return SalesforceToken(str(body["access_token"]), str(body.get("instance_url") or self.instance_url or ""))
