"""Pure helpers for card tests: an issuer, holders, passes and presentations, no store."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from joserfc.jwk import ECKey

from socialcard.card import sdjwt, statuslist
from socialcard.card.verifier import VCT, Verifier

ISSUER = "https://sc.test"
AUDIENCE = "socialcard"
URI = f"{ISSUER}/status/1"
KID = "issuer-key-1"


@dataclass
class Issuer:
    key: ECKey = field(default_factory=lambda: ECKey.generate_key("P-256", private=True))
    kid: str = KID
    status: statuslist.StatusList = field(default_factory=lambda: statuslist.StatusList(131_072))

    def jwks(self) -> dict[str, Any]:
        return {"keys": [{**sdjwt.public_jwk(self.key), "kid": self.kid}]}

    def claims(
        self, holder: ECKey, *, idx: int = 7, now: int | None = None, **extra: Any
    ) -> dict[str, Any]:
        now = int(time.time()) if now is None else now
        claims = {
            "iss": ISSUER,
            "vct": VCT,
            "iat": now - 3600,
            "exp": now + 7 * 86400,
            "cnf": {"jwk": sdjwt.public_jwk(holder)},
            "status": {"status_list": {"idx": idx, "uri": URI}},
        }
        claims.update(extra)
        return claims

    def issue(
        self,
        holder: ECKey,
        *,
        tariffs: tuple[str, ...] = ("transit_reduced", "museum_free"),
        idx: int = 7,
        now: int | None = None,
        **extra: Any,
    ) -> str:
        token, _ = sdjwt.issue(
            claims=self.claims(holder, idx=idx, now=now, **extra),
            disclosable=("tariffs", dict.fromkeys(tariffs, True)),
            key=self.key,
            kid=self.kid,
        )
        return token

    def list_token(self, *, iat: int | None = None, exp: int | None = None) -> str:
        iat = int(time.time()) if iat is None else iat
        return statuslist.build_token(
            self.status,
            uri=URI,
            issuer=ISSUER,
            key=self.key,
            kid=self.kid,
            iat=iat,
            exp=exp if exp is not None else iat + 86400,
            ttl=30,
        )

    def verifier(self, *, max_age: int = 900) -> Verifier:
        verifier = Verifier(issuer=ISSUER, audience=AUDIENCE, max_list_age=max_age)
        verifier.set_keys(self.jwks())
        verifier.load_list(self.list_token(), uri=URI)
        return verifier


def holder() -> ECKey:
    return ECKey.generate_key("P-256", private=True)


def present(
    sd_jwt: str,
    key: ECKey,
    *,
    tariff: str = "transit_reduced",
    nonce: str | None = None,
    iat: int | None = None,
    audience: str = AUDIENCE,
) -> str:
    return sdjwt.present(
        sd_jwt,
        disclose=[tariff],
        holder=key,
        audience=audience,
        nonce=nonce or secrets.token_urlsafe(16),
        iat=int(time.time()) if iat is None else iat,
    )
