"""OAuth 2.0 (client credentials, refresh token, JWT bearer) and the sessions it issues."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import threading
import time

import jwt
import jwt.types
from werkzeug.wrappers import Request, Response

from connectors.sandbox._server import (
    json_response,
)
from connectors.sandbox.salesforce._http import (
    JWT_GRANT,
    SalesforceRoutes,
)


class AuthRoutes(SalesforceRoutes):
    """``/services/oauth2/token`` and the session table behind every request's bearer token."""

    session_ttl_s: float | None
    jwt_public_key: str | bytes | None
    client_id: str
    client_secret: str
    instance_url: str
    _session_lock: threading.Lock
    _sessions: dict[str, float]
    _refresh_tokens: set[str]

    def issue_session(self, ttl_s: float | None = None) -> str:
        """A new access token, valid for ``ttl_s`` (default ``session_ttl_s``; None = until expired)."""
        token = f"{self.org.org_id[:15]}!{secrets.token_urlsafe(48)}"
        ttl = self.session_ttl_s if ttl_s is None else ttl_s
        with self._session_lock:
            self._sessions[token] = math.inf if ttl is None else time.monotonic() + ttl
        self.stats.increment("sessions_issued")
        return token

    def add_token(self, token: str, ttl_s: float | None = None) -> None:
        """Accept ``token`` (again) as a session, e.g. the fixed token after :meth:`expire_sessions`."""
        with self._session_lock:
            self._sessions[token] = math.inf if ttl_s is None else time.monotonic() + ttl_s

    def expire_sessions(self) -> int:
        """End every session now, the fixed token's too (an admin's "revoke all"); returns how many."""
        with self._session_lock:
            count = len(self._sessions)
            self._sessions.clear()
            return count

    def expire_session(self, token: str) -> bool:
        with self._session_lock:
            return self._sessions.pop(token, None) is not None

    def issue_refresh_token(self) -> str:
        """A refresh token the ``refresh_token`` grant accepts (client credentials and JWT issue none)."""
        token = "5Aep" + secrets.token_urlsafe(48)
        with self._session_lock:
            self._refresh_tokens.add(token)
        return token

    def session_valid(self, token: str) -> bool:
        with self._session_lock:
            expires = self._sessions.get(token)
            if expires is None:
                return False
            if time.monotonic() >= expires:
                del self._sessions[token]
                return False
            return True

    def _token(self, request: Request) -> Response:
        form = request.form
        grant = form.get("grant_type", "")
        if grant == "client_credentials":
            client_id, secret = form.get("client_id"), form.get("client_secret")
            if request.authorization is not None and request.authorization.type == "basic":
                client_id, secret = request.authorization.username, request.authorization.password
            if client_id != self.client_id:
                return self._oauth_error("invalid_client_id", "client identifier invalid")
            if not secret or not hmac.compare_digest(str(secret), self.client_secret):
                return self._oauth_error("invalid_client", "invalid client credentials")
        elif grant == JWT_GRANT:
            problem = self._check_assertion(form.get("assertion", ""))
            if problem is not None:
                return problem
        elif grant == "refresh_token":
            refresh = form.get("refresh_token", "")
            if form.get("client_id") not in (None, self.client_id):
                return self._oauth_error("invalid_client_id", "client identifier invalid")
            with self._session_lock:
                known = refresh in self._refresh_tokens
            if not known:
                return self._oauth_error("invalid_grant", "expired access/refresh token")
        else:
            return self._oauth_error("unsupported_grant_type", "grant type not supported")
        token = self.issue_session()
        issued_at = str(time.time_ns() // 1_000_000)
        user = self.org.integration_user_id
        identity = f"{self.instance_url}/id/{self.org.org_id}/{user}"
        signature = base64.b64encode(
            hmac.new(self.client_secret.encode(), (identity + issued_at).encode(), hashlib.sha256).digest()
        ).decode()
        return json_response(
            {
                "access_token": token,
                "signature": signature,
                "scope": "api",
                "instance_url": self.instance_url,
                "id": identity,
                "token_type": "Bearer",
                "issued_at": issued_at,
            }
        )

    @staticmethod
    def _oauth_error(error: str, description: str) -> Response:
        return json_response({"error": error, "error_description": description}, 400)

    def _check_assertion(self, assertion: str) -> Response | None:
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            return self._oauth_error("invalid_grant", "invalid assertion")
        if header.get("alg") != "RS256":
            return self._oauth_error("invalid_grant", "invalid assertion: the signing algorithm must be RS256")
        # simple-salesforce sends ``exp`` as a string; Salesforce accepts it, so expiry is checked here
        verify = self.jwt_public_key is not None
        options: jwt.types.Options = {
            "verify_signature": verify,
            "verify_exp": False,
            "verify_aud": False,
            "verify_iat": False,
            "verify_nbf": False,
        }
        try:
            if self.jwt_public_key is not None:
                claims = jwt.decode(assertion, self.jwt_public_key, algorithms=["RS256"], options=options)
            else:
                claims = jwt.decode(assertion, options=options)
        except jwt.PyJWTError:
            return self._oauth_error("invalid_grant", "invalid assertion")
        if claims.get("iss") != self.client_id:
            return self._oauth_error("invalid_client_id", "client identifier invalid")
        if not claims.get("sub"):
            return self._oauth_error("invalid_grant", "invalid assertion: no subject (sub)")
        try:
            expires = float(str(claims.get("exp")))
        except ValueError:
            return self._oauth_error("invalid_grant", "invalid assertion: no expiry (exp)")
        if expires < time.time() - 5:
            return self._oauth_error("invalid_grant", "expired authorization code")
        return None

    def _sandbox_expire(self, request: Request) -> Response:
        return json_response({"expired": self.expire_sessions()})
