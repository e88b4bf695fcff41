"""Entra ID stand-in: OpenID discovery, v2.0 (and v1) token endpoint, bearer validation.

azure-identity's `ClientSecretCredential` (through MSAL) discovers the token endpoint from
the OpenID document and posts a client-credentials grant with scope `{url}/.default`; the
emulator answers exactly that, signing HS256 JWTs that map to a Dataverse systemuser. The
failure it prevents: a sync whose production auth path is never exercised in tests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import TYPE_CHECKING, Any

from emulators.dynamics.config import DynamicsConfig, UserConfig
from emulators.dynamics.errors import DataverseError

if TYPE_CHECKING:
    from emulators.dynamics.timing import Dice


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def openid_configuration(base: str, tenant: str, v2: bool = True) -> dict[str, Any]:
    suffix = "/v2.0" if v2 else ""
    return {
        "issuer": f"{base}/{tenant}{suffix}",
        "authorization_endpoint": f"{base}/{tenant}/oauth2{suffix}/authorize",
        "token_endpoint": f"{base}/{tenant}/oauth2{suffix}/token",
        "device_authorization_endpoint": f"{base}/{tenant}/oauth2{suffix}/devicecode",
        "jwks_uri": f"{base}/{tenant}/discovery{suffix}/keys",
        "end_session_endpoint": f"{base}/{tenant}/oauth2{suffix}/logout",
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt",
                                                  "client_secret_basic"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token"],
        "tenant_region_scope": "EU",
        "cloud_instance_name": "emulator.local",
    }


class OAuthError(Exception):
    def __init__(self, status: int, error: str, aadsts: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.payload = {
            "error": error,
            "error_description": f"AADSTS{aadsts}: {description} Trace ID: {uuid.uuid4()} "
                                 f"Correlation ID: {uuid.uuid4()} Timestamp: "
                                 f"{time.strftime('%Y-%m-%d %H:%M:%SZ', time.gmtime())}",
            "error_codes": [aadsts],
            "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
            "trace_id": str(uuid.uuid4()),
            "correlation_id": str(uuid.uuid4()),
        }


class TokenService:
    def __init__(self, cfg: DynamicsConfig, dice: Dice | None = None) -> None:
        self.cfg = cfg
        self.key = cfg.token_signing_key.encode()
        self.dice = dice

    def _lifetime(self) -> tuple[float, int]:
        """(exact lifetime in wall seconds, the `expires_in` to announce)."""
        world = self.cfg.world
        fixed = self.cfg.token_lifetime_seconds
        if world.token_lifetime_range is None or self.dice is None:
            if world.time_scale == 1.0:
                return fixed, fixed
            life = world.scale(fixed)
        else:
            lo, hi = world.token_lifetime_range
            life = world.scale(self.dice.stream("tokens").uniform(lo, hi))
        # Announce whole seconds, rounded down, so a client never trusts a dead token.
        return life, max(1, int(life))

    def issue(self, user: UserConfig, audience: str, tenant: str, lifetime: int | None = None,
              issuer_base: str = "") -> tuple[str, int]:
        exact: float
        if lifetime is None:
            exact, life = self._lifetime()
        else:
            exact, life = lifetime, lifetime
        now = int(time.time())
        exp: float = now + life if exact == life else time.time() + exact
        claims = {"aud": audience, "iss": f"{issuer_base}/{tenant}/v2.0", "iat": now,
                  "nbf": now, "exp": exp, "appid": user.client_id,
                  "azp": user.client_id, "oid": user.object_id, "sub": user.object_id,
                  "tid": tenant, "ver": "2.0", "idtyp": "app", "uti": _b64(uuid.uuid4().bytes)}
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        sig = _b64(hmac.new(self.key, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        return f"{header}.{payload}.{sig}", life

    def token_endpoint(self, tenant: str, form: dict[str, str], basic: tuple[str, str] | None,
                       issuer_base: str, v2: bool) -> dict[str, Any]:
        grant = form.get("grant_type", "")
        if grant != "client_credentials":
            raise OAuthError(400, "unsupported_grant_type", 70003,
                             f"The app requested an unsupported grant type '{grant}'.")
        client_id = form.get("client_id") or (basic[0] if basic else "")
        secret = form.get("client_secret") or (basic[1] if basic else "")
        if form.get("client_assertion"):
            raise OAuthError(401, "invalid_client", 700027,
                             "Certificate credentials are not supported by the emulator.")
        user = self.cfg.user_by_client(client_id)
        if user is None:
            raise OAuthError(400, "unauthorized_client", 700016,
                             f"Application with identifier '{client_id}' was not found in the "
                             f"directory '{tenant}'.")
        if not hmac.compare_digest(secret.encode(), user.client_secret.encode()):
            raise OAuthError(401, "invalid_client", 7000215,
                             "Invalid client secret provided. Ensure the secret being sent in "
                             "the request is the client secret value, not the client secret "
                             f"ID, for a secret added to app '{client_id}'.")
        if v2:
            scope = form.get("scope", "").strip()
            scopes = scope.split()
            if len(scopes) != 1 or not scopes[0].endswith("/.default"):
                raise OAuthError(400, "invalid_scope", 1002012,
                                 f"The provided value for scope {scope} is not valid. Client "
                                 "credential flows must have a scope value with /.default "
                                 "suffixed to the resource identifier (application ID URI).")
            audience = scopes[0][: -len("/.default")]
        else:
            audience = form.get("resource", "").rstrip("/")
            if not audience:
                raise OAuthError(400, "invalid_request", 900144,
                                 "The request body must contain the following parameter: "
                                 "'resource'.")
        token, life = self.issue(user, audience, tenant, issuer_base=issuer_base)
        out: dict[str, Any] = {"token_type": "Bearer", "expires_in": life,
                               "ext_expires_in": life, "access_token": token}
        if not v2:
            now = int(time.time())
            out.update({"expires_on": str(now + life), "not_before": str(now),
                        "resource": audience, "expires_in": str(life)})
        return out

    def authenticate(self, authorization: str | None) -> UserConfig:
        """Bearer token -> user, or a 401 DataverseError (missing/expired/invalid)."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise _unauthorized("", "The user is not authenticated. A Bearer token is required.")
        token = authorization[7:].strip()
        try:
            header, payload, sig = token.split(".")
            expected = hmac.new(self.key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(_unb64(sig), expected):
                raise ValueError("signature")
            claims = json.loads(_unb64(payload))
        except (ValueError, TypeError) as e:
            raise _unauthorized("", "The access token is invalid.") from e
        if claims.get("exp", 0) <= time.time():
            raise _unauthorized("0x8005F101", "The access token has expired. "
                                              "The requested resource requires authentication.")
        user = self.cfg.user_by_client(claims.get("appid", ""))
        if user is None:
            raise _unauthorized("", "The user is not a member of the organization.")
        return user


def _unauthorized(code: str, message: str) -> DataverseError:
    return DataverseError(401, code, message,
                          {"WWW-Authenticate": "Bearer error=\"invalid_token\", "
                                               f"error_description=\"{message}\""})
