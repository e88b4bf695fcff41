"""Identity service: client-credentials tokens with Marketo's reuse-until-expiry rule.

Asking again before expiry returns the same token with its remaining lifetime; a
client that caches by client_id and honours `expires_in` works, one that assumes a
fresh hour each time is caught when the token expires under it (602).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from emulators.marketo.config import ApiUser, MarketoConfig


@dataclass
class Token:
    value: str
    user: ApiUser
    issued_at: float
    expires_at: float


class TokenStore:
    def __init__(self, config: MarketoConfig) -> None:
        self.config = config
        self.by_value: dict[str, Token] = {}
        self.current: dict[str, Token] = {}  # client_id → live token

    def user_for(self, client_id: str, client_secret: str) -> ApiUser | None:
        for user in self.config.users:
            if user.client_id == client_id and secrets.compare_digest(
                user.client_secret, client_secret
            ):
                return user
        return None

    def issue(self, user: ApiUser, now: float) -> Token:
        tok = self.current.get(user.client_id)
        if tok is not None and tok.expires_at > now:
            return tok
        value = f"{secrets.token_hex(4)}-{secrets.token_hex(2)}-{secrets.token_hex(2)}-" \
            f"{secrets.token_hex(2)}-{secrets.token_hex(6)}:emu"
        tok = Token(value, user, now, now + self.config.scaled(self.config.token_lifetime_s))
        self.current[user.client_id] = tok
        self.by_value[value] = tok
        return tok

    def check(self, value: str | None, now: float) -> tuple[ApiUser | None, str | None]:
        """Return (user, None) or (None, '601'|'602')."""
        if not value:
            return None, "601"
        tok = self.by_value.get(value)
        if tok is None:
            return None, "601"
        if tok.expires_at <= now:
            return None, "602"
        return tok.user, None

    def expire(self, value: str | None, now: float) -> None:
        tok = self.by_value.get(value or "")
        if tok is not None:
            tok.expires_at = min(tok.expires_at, now)

    def expire_all(self, now: float) -> int:
        for tok in self.by_value.values():
            tok.expires_at = min(tok.expires_at, now)
        return len(self.by_value)
