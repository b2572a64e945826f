"""Security tests of passes, presentations and status lists (issue 13): forgery, algorithm
confusion, keys, time, digests, replay, revocation, linkability, bombs, and an independent
SD-JWT verifier (the OpenWallet Foundation's `sd-jwt` package) reading what we issue."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import random
import time
import tracemalloc
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from joserfc import jws
from joserfc.jwk import ECKey, OctKey

from socialcard.card import qr, sdjwt, statuslist
from socialcard.card.enums import Verdict
from socialcard.card.schemas import VerifyResponse
from socialcard.card.sdjwt import SdJwtError, b64encode, compact_json
from tests.card.helpers import AUDIENCE, ISSUER, KID, URI, Issuer, holder, present

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _verify(issuer: Issuer, presentation: str, now: float | None = None) -> sdjwt.Verified:
    return sdjwt.verify(
        presentation,
        issuer_key={issuer.kid: issuer.key}.get,
        now=time.time() if now is None else now,
        audience=AUDIENCE,
    )


def _resign(header: dict[str, object], payload: dict[str, object], key: ECKey) -> str:
    return sdjwt.sign_jwt(header, payload, key)


def _parts(token: str) -> tuple[dict[str, object], dict[str, object]]:
    parts = sdjwt.split_compact(token, what="jwt")
    return parts.header, parts.payload


class TestGenuine:
    def test_a_presentation_verifies_and_discloses_only_the_tariff_asked(self) -> None:
        issuer, key = Issuer(), holder()
        verified = _verify(issuer, present(issuer.issue(key), key))
        assert verified.claims["tariffs"] == {"transit_reduced": True}
        assert verified.claims["iss"] == ISSUER
        for absent in ("name", "national_id", "birth_on", "statuses", "sub"):
            assert absent not in verified.claims

    def test_the_verifier_answers_valid_with_the_pass_expiry(self) -> None:
        issuer, key = Issuer(), holder()
        sd = issuer.issue(key)
        outcome = issuer.verifier().check(present(sd, key), tariff="transit_reduced")
        assert outcome.result == Verdict.VALID
        assert outcome.valid_until == _parts(sd.split("~")[0])[1]["exp"]

    def test_a_tariff_not_disclosed_is_invalid(self) -> None:
        issuer, key = Issuer(), holder()
        outcome = issuer.verifier().check(present(issuer.issue(key), key), tariff="museum_free")
        assert (outcome.result, outcome.reason) == (Verdict.INVALID, "tariff_not_disclosed")

    def test_joserfc_agrees_with_our_signature_checks(self) -> None:
        issuer, key = Issuer(), holder()
        token, _, kb = sdjwt.split_presentation(present(issuer.issue(key), key))
        jws.deserialize_compact(token, issuer.key, algorithms=["ES256"])
        jws.deserialize_compact(kb, key, algorithms=["ES256"])
        with pytest.raises(Exception):  # noqa: B017 - joserfc's own refusal
            jws.deserialize_compact(token, holder(), algorithms=["ES256"])

    def test_a_holder_key_off_the_curve_is_rejected(self) -> None:
        jwk = sdjwt.public_jwk(holder())
        jwk["y"] = b64encode(bytes(31) + b"\x01")
        with pytest.raises(SdJwtError, match="cnf"):
            sdjwt.holder_key(jwk)
        with pytest.raises(SdJwtError, match="cnf"):
            sdjwt.holder_key({**sdjwt.public_jwk(holder()), "d": "AAAA"})


class TestEncoding:
    @given(
        raw=st.binary(max_size=80),
        position=st.integers(min_value=0),
        char=st.sampled_from(ALPHABET),
    )
    def test_base64url_is_canonical(self, raw: bytes, position: int, char: str) -> None:
        text = b64encode(raw)
        assert sdjwt.b64decode(text, what="x") == raw
        if not text:
            return
        i = position % len(text)
        other = text[:i] + char + text[i + 1 :]
        if other == text:
            return
        with contextlib.suppress(SdJwtError):
            assert sdjwt.b64decode(other, what="x") != raw


class TestForgery:
    def test_a_thousand_byte_flips_are_all_rejected(self) -> None:
        issuer, key = Issuer(), holder()
        genuine = present(issuer.issue(key), key)
        token, disclosures, kb = sdjwt.split_presentation(genuine)
        rng = random.Random(13)
        regions = {"jwt": (0, len(token))}
        start = len(token) + 1
        regions["disclosure"] = (start, start + len(disclosures[0]))
        regions["kb"] = (len(genuine) - len(kb), len(genuine))
        tried = dict.fromkeys(regions, 0)
        for n in range(1200):
            name = list(regions)[n % 3]
            low, high = regions[name]
            pos = rng.randrange(low, high)
            original = genuine[pos]
            choices = [c for c in ALPHABET + ".~=+/" if c != original]
            mutated = genuine[:pos] + rng.choice(choices) + genuine[pos + 1 :]
            with pytest.raises(SdJwtError):
                _verify(issuer, mutated)
            tried[name] += 1
        assert all(count >= 400 for count in tried.values())

    def test_a_flipped_spare_bit_in_a_signature_is_rejected(self) -> None:
        # The last character of an 86-character signature carries 2 spare bits; a lenient
        # decoder reads "A" and "B" as the same bytes, so the token would be malleable.
        issuer, key = Issuer(), holder()
        genuine = present(issuer.issue(key), key)
        last = genuine[-1]
        twin = ALPHABET[(ALPHABET.index(last) ^ 1)]
        with pytest.raises(SdJwtError, match="encoding"):
            _verify(issuer, genuine[:-1] + twin)


class TestAlgorithms:
    def _forged(self, issuer: Issuer, key: ECKey, header: dict[str, object]) -> str:
        token = issuer.issue(key).split("~")[0]
        _, payload = _parts(token)
        head = b64encode(compact_json(header))
        body = b64encode(compact_json(payload))
        return f"{head}.{body}"

    def test_alg_none_is_rejected(self) -> None:
        issuer, key = Issuer(), holder()
        unsigned = self._forged(issuer, key, {"alg": "none", "typ": "dc+sd-jwt", "kid": KID})
        with pytest.raises(SdJwtError):
            _verify(issuer, unsigned + ".~")
        with pytest.raises(SdJwtError):
            _verify(issuer, unsigned + "." + "A" * 86 + "~")

    def test_hs256_keyed_with_the_public_key_is_rejected(self) -> None:
        issuer, key = Issuer(), holder()
        header = {"alg": "HS256", "typ": "dc+sd-jwt", "kid": KID}
        signing_input = self._forged(issuer, key, header)
        public_pem = issuer.key.as_pem(private=False)
        mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
        forged = f"{signing_input}.{b64encode(mac)}"
        disclosures = issuer.issue(key).split("~")[1:-1]
        with pytest.raises(SdJwtError, match=r"alg|signature"):
            _verify(issuer, sdjwt.combine(forged, disclosures))
        # The same with the public key's JWK text as the HMAC secret.
        jwk_text = json.dumps(sdjwt.public_jwk(issuer.key)).encode()
        mac = hmac.new(jwk_text, signing_input.encode(), hashlib.sha256).digest()
        with pytest.raises(SdJwtError, match=r"alg|signature"):
            _verify(issuer, sdjwt.combine(f"{signing_input}.{b64encode(mac)}", disclosures))

    @pytest.mark.parametrize(
        "alg", ["ES384", "ES512", "RS256", "PS256", "EdDSA", "ES256K", "es256"]
    )
    def test_unexpected_algorithms_are_rejected(self, alg: str) -> None:
        issuer, key = Issuer(), holder()
        token = issuer.issue(key).split("~")[0]
        header, _payload = _parts(token)
        forged = ".".join(
            [
                b64encode(compact_json({**header, "alg": alg})),
                token.split(".")[1],
                token.split(".")[2],
            ]
        )
        with pytest.raises(SdJwtError, match="alg"):
            _verify(issuer, forged + "~")

    @pytest.mark.parametrize("injected", ["jwk", "jku", "x5u", "x5c", "crit"])
    def test_injected_key_headers_are_rejected_even_when_signed(self, injected: str) -> None:
        issuer, key = Issuer(), holder()
        attacker = holder()
        token = issuer.issue(key).split("~")[0]
        _, payload = _parts(token)
        values: dict[str, object] = {
            "jwk": sdjwt.public_jwk(attacker),
            "jku": "https://attacker.test/jwks",
            "x5u": "https://attacker.test/cert",
            "x5c": ["MIIB"],
            "crit": ["exp"],
        }
        header = {"alg": "ES256", "typ": "dc+sd-jwt", "kid": KID, injected: values[injected]}
        for signer in (issuer.key, attacker):
            # joserfc refuses to sign some of these; sign the bytes ourselves then.
            head = b64encode(compact_json(header))
            body = b64encode(compact_json(payload))
            raw = jws.serialize_compact({"alg": "ES256"}, f"{head}.{body}".encode(), signer)
            forged = f"{head}.{body}.{raw.split('.')[2]}"
            with pytest.raises(SdJwtError, match=r"header|signature"):
                _verify(issuer, forged + "~")

    def test_a_kb_jwt_with_another_algorithm_or_type_is_rejected(self) -> None:
        issuer, key = Issuer(), holder()
        sd = issuer.issue(key)
        body = sd  # ends with "~"
        kb_payload = {
            "iat": int(time.time()),
            "aud": AUDIENCE,
            "nonce": "n" * 22,
            "sd_hash": sdjwt.sd_digest(body),
        }
        wrong_typ = sdjwt.sign_jwt({"alg": "ES256", "typ": "JWT"}, kb_payload, key)
        with pytest.raises(SdJwtError, match="kb_typ"):
            _verify(issuer, body + wrong_typ)
        oct_kb = jws.serialize_compact(
            {"alg": "HS256", "typ": "kb+jwt"},
            compact_json(kb_payload),
            OctKey.generate_key(256),
            algorithms=["HS256"],
        )
        with pytest.raises(SdJwtError, match=r"kb_alg|kb_signature"):
            _verify(issuer, body + oct_kb)


class TestKeysAndTime:
    def test_an_unknown_key_id_is_rejected(self) -> None:
        issuer, key = Issuer(), holder()
        other = Issuer(kid="someone-else")
        with pytest.raises(SdJwtError, match="kid_unknown"):
            _verify(issuer, present(other.issue(key), key))

    def test_a_pass_signed_by_another_key_under_our_kid_is_rejected(self) -> None:
        issuer, key = Issuer(), holder()
        impostor = Issuer()  # same kid, different key
        with pytest.raises(SdJwtError, match="jwt_signature"):
            _verify(issuer, present(impostor.issue(key), key))

    def test_expiry_is_enforced_beyond_sixty_seconds_of_skew(self) -> None:
        issuer, key = Issuer(), holder()
        now = int(time.time())
        sd = issuer.issue(key, exp=now - 59)
        _verify(issuer, present(sd, key))  # within the skew
        late = issuer.issue(key, exp=now - 61)
        with pytest.raises(SdJwtError, match="expired"):
            _verify(issuer, present(late, key))

    def test_not_yet_valid_beyond_sixty_seconds_is_rejected(self) -> None:
        issuer, key = Issuer(), holder()
        now = int(time.time())
        _verify(issuer, present(issuer.issue(key, nbf=now + 59), key))
        with pytest.raises(SdJwtError, match="not_yet_valid"):
            _verify(issuer, present(issuer.issue(key, nbf=now + 61), key))
        with pytest.raises(SdJwtError, match="not_yet_valid"):
            _verify(issuer, present(issuer.issue(key, iat=now + 120), key))

    def test_a_missing_or_non_numeric_expiry_is_rejected(self) -> None:
        issuer, key = Issuer(), holder()
        for exp in (None, "2099-01-01", True, float("nan")):
            claims = issuer.claims(key)
            if exp is None:
                del claims["exp"]
            else:
                claims["exp"] = exp
            if exp != exp:  # NaN cannot be serialised as JSON; skip it
                continue
            sd, _ = sdjwt.issue(
                claims=claims,
                disclosable=("tariffs", {"transit_reduced": True}),
                key=issuer.key,
                kid=KID,
            )
            with pytest.raises(SdJwtError, match="time_claims"):
                _verify(issuer, present(sd, key))

    def test_a_key_binding_jwt_older_than_sixty_seconds_is_rejected(self) -> None:
        issuer, key = Issuer(), holder()
        sd = issuer.issue(key)
        now = int(time.time())
        _verify(issuer, present(sd, key, iat=now - 55))
        with pytest.raises(SdJwtError, match="kb_iat"):
            _verify(issuer, present(sd, key, iat=now - 65))
        with pytest.raises(SdJwtError, match="kb_iat"):
            _verify(issuer, present(sd, key, iat=now + 65))

    def test_a_key_binding_jwt_for_another_audience_or_by_another_key_is_rejected(self) -> None:
        issuer, key = Issuer(), holder()
        sd = issuer.issue(key)
        with pytest.raises(SdJwtError, match="kb_aud"):
            _verify(issuer, present(sd, key, audience="elsewhere"))
        with pytest.raises(SdJwtError, match="kb_signature"):
            _verify(issuer, present(sd, holder()))

    def test_a_missing_key_binding_jwt_is_rejected(self) -> None:
        issuer, key = Issuer(), holder()
        with pytest.raises(SdJwtError, match="kb_missing"):
            _verify(issuer, issuer.issue(key))


class TestDigests:
    """RFC 9901 section 7.1: what a verifier must reject."""

    def _with_disclosures(self, issuer: Issuer, key: ECKey, payload_edit, extra: list[str]) -> str:  # type: ignore[no-untyped-def]
        sd = issuer.issue(key)
        token = sd.split("~")[0]
        _, payload = _parts(token)
        payload_edit(payload)
        signed = _resign({"alg": "ES256", "typ": "dc+sd-jwt", "kid": KID}, payload, issuer.key)
        disclosures = sd.split("~")[1:-1] + extra
        body = sdjwt.combine(signed, disclosures)
        kb = {
            "iat": int(time.time()),
            "aud": AUDIENCE,
            "nonce": "n" * 22,
            "sd_hash": sdjwt.sd_digest(body),
        }
        return body + sdjwt.sign_jwt({"alg": "ES256", "typ": "kb+jwt"}, kb, key)

    def test_a_disclosure_whose_digest_is_not_in_the_pass_is_rejected(self) -> None:
        issuer, key = Issuer(), holder()
        rogue = sdjwt.make_disclosure("pharmacy_discount", True).encoded
        with pytest.raises(SdJwtError, match="unreferenced"):
            _verify(issuer, self._with_disclosures(issuer, key, lambda p: None, [rogue]))

    def test_tampering_with_the_signed_digests_breaks_the_signature(self) -> None:
        issuer, key = Issuer(), holder()
        genuine = present(issuer.issue(key), key)
        token = genuine.split("~")[0]
        _header, payload = _parts(token)
        payload["tariffs"]["_sd"][0] = sdjwt.sd_digest("x")  # type: ignore[index]
        forged = ".".join(
            [token.split(".")[0], b64encode(compact_json(payload)), token.split(".")[2]]
        )
        with pytest.raises(SdJwtError, match="jwt_signature"):
            _verify(issuer, genuine.replace(token, forged))

    def test_duplicate_disclosures_are_rejected(self) -> None:
        issuer, key = Issuer(), holder()
        sd = issuer.issue(key)
        token, disclosures, _ = sdjwt.split_presentation(sd)
        body = sdjwt.combine(token, [*disclosures, disclosures[0]])
        kb = {
            "iat": int(time.time()),
            "aud": AUDIENCE,
            "nonce": "n" * 22,
            "sd_hash": sdjwt.sd_digest(body),
        }
        with pytest.raises(SdJwtError, match="disclosure_repeated"):
            _verify(issuer, body + sdjwt.sign_jwt({"alg": "ES256", "typ": "kb+jwt"}, kb, key))

    def test_a_digest_appearing_twice_is_rejected(self) -> None:
        issuer, key = Issuer(), holder()

        def repeat(payload: dict) -> None:  # type: ignore[type-arg]
            digests = payload["tariffs"]["_sd"]
            digests.append(digests[0])

        with pytest.raises(SdJwtError, match="digest_repeated"):
            _verify(issuer, self._with_disclosures(issuer, key, repeat, []))

    def test_a_disclosure_that_would_overwrite_a_claim_is_rejected(self) -> None:
        issuer, key = Issuer(), holder()
        clash = sdjwt.make_disclosure("iss", "https://attacker.test")

        def add(payload: dict) -> None:  # type: ignore[type-arg]
            payload["_sd"] = [clash.digest]

        with pytest.raises(SdJwtError, match="claim_overwritten"):
            _verify(issuer, self._with_disclosures(issuer, key, add, [clash.encoded]))

    @pytest.mark.parametrize("name", ["_sd", "..."])
    def test_a_disclosure_named_sd_or_ellipsis_is_rejected(self, name: str) -> None:
        issuer, key = Issuer(), holder()
        bad = sdjwt.make_disclosure(name, True)

        def add(payload: dict) -> None:  # type: ignore[type-arg]
            payload["_sd"] = [bad.digest]

        with pytest.raises(SdJwtError, match="disclosure_name"):
            _verify(issuer, self._with_disclosures(issuer, key, add, [bad.encoded]))

    def test_an_array_element_disclosure_in_an_object_is_rejected(self) -> None:
        issuer, key = Issuer(), holder()
        element = b64encode(compact_json([sdjwt.new_salt(), "transit_reduced"]))

        def add(payload: dict) -> None:  # type: ignore[type-arg]
            payload["_sd"] = [sdjwt.sd_digest(element)]

        with pytest.raises(SdJwtError, match="disclosure_kind"):
            _verify(issuer, self._with_disclosures(issuer, key, add, [element]))

    def test_another_hash_algorithm_is_rejected(self) -> None:
        issuer, key = Issuer(), holder()

        def alg(payload: dict) -> None:  # type: ignore[type-arg]
            payload["_sd_alg"] = "sha-1"

        with pytest.raises(SdJwtError, match="sd_alg"):
            _verify(issuer, self._with_disclosures(issuer, key, alg, []))

    def test_a_wrong_sd_hash_is_rejected(self) -> None:
        issuer, key = Issuer(), holder()
        sd = issuer.issue(key)
        kb = {
            "iat": int(time.time()),
            "aud": AUDIENCE,
            "nonce": "n" * 22,
            "sd_hash": sdjwt.sd_digest(sd + "x"),
        }
        with pytest.raises(SdJwtError, match="kb_sd_hash"):
            _verify(issuer, sd + sdjwt.sign_jwt({"alg": "ES256", "typ": "kb+jwt"}, kb, key))

    def test_a_dropped_disclosure_is_caught_by_the_sd_hash(self) -> None:
        issuer, key = Issuer(), holder()
        genuine = present(issuer.issue(key), key)
        token, _disclosures, kb = sdjwt.split_presentation(genuine)
        with pytest.raises(SdJwtError, match="kb_sd_hash"):
            _verify(issuer, sdjwt.combine(token, [], kb))

    def test_duplicate_json_members_are_rejected(self) -> None:
        with pytest.raises(SdJwtError, match="duplicate_json_member"):
            sdjwt.strict_json(b'{"exp": 1, "exp": 2}', what="jwt")
        with pytest.raises(SdJwtError):
            sdjwt.strict_json(b'{"a": NaN}', what="jwt")
        with pytest.raises(SdJwtError):
            sdjwt.strict_json(b'{"a": "\\ud800"}', what="jwt")


class TestSharedReplayCache:
    def test_a_replay_to_another_worker_is_caught(self, tmp_path) -> None:  # type: ignore[no-untyped-def]
        from socialcard.card.verifier import SharedReplayCache

        path = tmp_path / "replay.bin"
        worker_a = SharedReplayCache(path, window=240, slots=1024)
        worker_b = SharedReplayCache(path, window=240, slots=1024)
        now = time.time()
        assert worker_a.first_use("nonce-1", now)
        assert not worker_b.first_use("nonce-1", now + 1)
        assert worker_b.first_use("nonce-2", now + 1)
        assert worker_a.first_use("nonce-1", now + 241)  # forgotten after the window

    def test_a_full_table_still_catches_recent_replays(self, tmp_path) -> None:  # type: ignore[no-untyped-def]
        from socialcard.card.verifier import SharedReplayCache

        cache = SharedReplayCache(tmp_path / "replay.bin", window=240, slots=64)
        now = time.time()
        for i in range(500):
            assert cache.first_use(f"n{i}", now + i * 0.001)
        assert not cache.first_use("n499", now + 1)


class TestVerifierOutcomes:
    def test_a_replayed_presentation_is_rejected(self) -> None:
        issuer, key = Issuer(), holder()
        verifier = issuer.verifier()
        presentation = present(issuer.issue(key), key)
        assert verifier.check(presentation, tariff="transit_reduced").result == Verdict.VALID
        again = verifier.check(presentation, tariff="transit_reduced")
        assert (again.result, again.reason) == (Verdict.INVALID, "replayed")

    @pytest.mark.parametrize(
        ("value", "reason"), [(statuslist.INVALID, "revoked"), (statuslist.SUSPENDED, "suspended")]
    )
    def test_revoked_and_suspended_passes_are_invalid(self, value: int, reason: str) -> None:
        issuer, key = Issuer(), holder()
        issuer.status.set(7, value)
        outcome = issuer.verifier().check(
            present(issuer.issue(key, idx=7), key), tariff="transit_reduced"
        )
        assert (outcome.result, outcome.reason) == (Verdict.INVALID, reason)

    def test_a_stale_list_cannot_verify(self) -> None:
        issuer, key = Issuer(), holder()
        verifier = issuer.verifier(max_age=600)
        verifier.lists.clear()
        verifier.load_list(issuer.list_token(iat=int(time.time()) - 601))
        outcome = verifier.check(present(issuer.issue(key), key), tariff="transit_reduced")
        assert outcome.result == Verdict.CANNOT_VERIFY

    def test_an_expired_list_cannot_verify(self) -> None:
        issuer, key = Issuer(), holder()
        verifier = issuer.verifier()
        verifier.lists.clear()
        now = int(time.time())
        verifier.load_list(issuer.list_token(iat=now - 10, exp=now - 1))
        assert verifier.check(present(issuer.issue(key), key), tariff="transit_reduced").result == (
            Verdict.CANNOT_VERIFY
        )

    def test_no_list_cannot_verify(self) -> None:
        issuer, key = Issuer(), holder()
        verifier = issuer.verifier()
        verifier.lists.clear()
        assert verifier.check(present(issuer.issue(key), key), tariff="transit_reduced").result == (
            Verdict.CANNOT_VERIFY
        )

    def test_an_index_past_the_list_is_invalid(self) -> None:
        issuer, key = Issuer(), holder()
        outcome = issuer.verifier().check(
            present(issuer.issue(key, idx=131_072), key), tariff="transit_reduced"
        )
        assert (outcome.result, outcome.reason) == (Verdict.INVALID, "status_index")

    def test_the_merchant_answer_holds_only_result_and_valid_until(self) -> None:
        schema = VerifyResponse.model_json_schema()
        assert set(schema["properties"]) == {"result", "valid_until"}
        assert schema.get("additionalProperties") is False
        assert set(schema["properties"]["result"]["enum"]) == {"valid", "invalid", "cannot_verify"}


class TestMalformedLists:
    def _token(self, issuer: Issuer, status_list: dict[str, object], **claims: object) -> str:
        payload = {
            "iss": ISSUER,
            "sub": URI,
            "iat": int(time.time()),
            "ttl": 30,
            "status_list": status_list,
            **claims,
        }
        return sdjwt.sign_jwt(
            {"alg": "ES256", "typ": "statuslist+jwt", "kid": KID}, payload, issuer.key
        )

    @pytest.mark.parametrize(
        "body",
        [
            {"bits": 1, "lst": b64encode(zlib.compress(bytes(16)))},
            {"bits": 2, "lst": "not base64!"},
            {"bits": 2, "lst": b64encode(b"not zlib at all")},
            {"bits": 2, "lst": b64encode(zlib.compress(b"")[:-2])},
            {"bits": 2, "lst": b64encode(zlib.compress(bytes(8)) + b"trailing")},
            {"bits": 2},
            {"lst": b64encode(zlib.compress(bytes(8)))},
        ],
    )
    def test_a_malformed_list_is_rejected(self, body: dict[str, object]) -> None:
        issuer = Issuer()
        with pytest.raises(statuslist.StatusListError):
            statuslist.parse_token(self._token(issuer, body), issuer_key={KID: issuer.key}.get)

    def test_a_list_for_another_uri_or_type_or_key_is_rejected(self) -> None:
        issuer = Issuer()
        good = {"bits": 2, "lst": b64encode(zlib.compress(bytes(8)))}
        with pytest.raises(statuslist.StatusListError, match="list_sub"):
            statuslist.parse_token(
                self._token(issuer, good), issuer_key={KID: issuer.key}.get, expected_uri=URI + "9"
            )
        wrong_typ = sdjwt.sign_jwt(
            {"alg": "ES256", "typ": "JWT", "kid": KID},
            {"sub": URI, "iat": 1, "status_list": good},
            issuer.key,
        )
        with pytest.raises(statuslist.StatusListError, match="list_typ"):
            statuslist.parse_token(wrong_typ, issuer_key={KID: issuer.key}.get)
        with pytest.raises(statuslist.StatusListError, match="list_signature"):
            statuslist.parse_token(self._token(Issuer(), good), issuer_key={KID: issuer.key}.get)
        with pytest.raises(statuslist.StatusListError, match="list_ttl"):
            statuslist.parse_token(
                self._token(issuer, good, ttl=-5), issuer_key={KID: issuer.key}.get
            )

    def test_a_compression_bomb_is_rejected_in_bounded_memory_and_time(self) -> None:
        issuer = Issuer()
        deflater = zlib.compressobj(9)
        chunk = bytes(1 << 20)
        bomb = b"".join(deflater.compress(chunk) for _ in range(256)) + deflater.flush()
        assert len(bomb) < 1 << 20  # 256 MiB of zeros in well under 1 MiB
        token = self._token(issuer, {"bits": 2, "lst": b64encode(bomb)})
        tracemalloc.start()
        started = time.perf_counter()
        with pytest.raises(statuslist.StatusListError, match=r"list_size|list_signature"):
            statuslist.parse_token(token, issuer_key={KID: issuer.key}.get)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert elapsed < 2.0
        assert peak < 64 * 1024 * 1024  # the 4 MiB bound, the token and copies; never 256 MiB

    def test_a_bomb_inside_a_well_signed_list_stops_at_the_bound(self) -> None:
        issuer = Issuer()
        deflater = zlib.compressobj(9)
        bomb = b"".join(deflater.compress(bytes(1 << 20)) for _ in range(64)) + deflater.flush()
        token = self._token(issuer, {"bits": 2, "lst": b64encode(bomb)})
        tracemalloc.start()
        with pytest.raises(statuslist.StatusListError, match="list_size"):
            statuslist.parse_token(token, issuer_key={KID: issuer.key}.get, max_entries=1 << 20)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < 16 * 1024 * 1024  # never the 64 MiB the stream would inflate to

    def test_an_oversized_list_token_is_rejected_before_parsing(self) -> None:
        issuer = Issuer()
        with pytest.raises(statuslist.StatusListError, match="list_size"):
            statuslist.parse_token(
                "a" * (statuslist.MAX_TOKEN + 1), issuer_key={KID: issuer.key}.get
            )


class TestOversizedPresentations:
    def test_an_oversized_presentation_is_rejected_at_once(self) -> None:
        # Refused by its size or alphabet before any splitting, decoding or signature work
        # (the code says which check answered; a wall-clock bound would flake under load).
        issuer = Issuer()
        for payload in ("a" * 20_000, "~" * 20_000, "a." * 10_000, "é" * 100):
            with pytest.raises(SdJwtError, match="presentation_size"):
                _verify(issuer, payload)

    def test_too_many_disclosures_are_rejected(self) -> None:
        issuer = Issuer()
        with pytest.raises(SdJwtError, match="presentation_format"):
            _verify(issuer, "a.b.c" + "~AAAA" * 100 + "~")

    def test_the_qr_forms_round_trip_and_bad_qr_data_is_rejected(self) -> None:
        issuer, key = Issuer(), holder()
        presentation = present(issuer.issue(key), key)
        assert qr.unpack(qr.pack(presentation)) == presentation
        assert qr.decode_scan(qr.pack(presentation)) == presentation
        assert qr.decode_scan(presentation.encode()) == presentation
        packed = qr.pack(presentation)
        for bad in (b"SC\x01" + b"\xff" * 10_000, packed[:-1], packed + b"x", b"SC\x01\x00\x05ab"):
            with pytest.raises(SdJwtError):
                qr.unpack(bad)

    def test_the_qr_page_gets_an_svg(self) -> None:
        issuer, key = Issuer(), holder()
        image = qr.svg(present(issuer.issue(key), key))
        assert image.startswith("<svg")
        assert "</svg>" in image

    def test_a_one_tariff_presentation_fits_a_phone_readable_qr(self) -> None:
        issuer, key = Issuer(), holder()
        measure = qr.measure(present(issuer.issue(key), key))
        assert measure.packed_version <= 25
        assert measure.text_version <= 25
        # A pass with eight tariffs (eight digests) still fits in the compact form.
        many = tuple(f"tariff_{i}" for i in range(8))
        crowded = qr.measure(present(issuer.issue(key, tariffs=many), key, tariff="tariff_3"))
        assert crowded.packed_version <= 25


class TestUnlinkability:
    def test_a_hundred_presentations_to_two_merchants_share_nothing_linkable(self) -> None:
        issuer = Issuer()
        indexes = random.Random(5).sample(range(131_072), 100)
        seen: dict[str, set[str]] = {
            "signature": set(),
            "salt": set(),
            "holder": set(),
            "index": set(),
        }
        for i, idx in enumerate(indexes):
            key = holder()
            presentation = present(
                issuer.issue(key, idx=idx),
                key,
                tariff="transit_reduced" if i % 2 else "museum_free",
            )
            verified = _verify(issuer, presentation)
            token, disclosures, _ = sdjwt.split_presentation(presentation)
            values = {
                "signature": token.split(".")[2],
                "salt": json.loads(base64.urlsafe_b64decode(disclosures[0] + "==").decode())[0],
                "holder": json.dumps(verified.claims["cnf"]["jwk"], sort_keys=True),
                "index": str(verified.claims["status"]["status_list"]["idx"]),
            }
            for kind, value in values.items():
                assert value not in seen[kind], kind
                seen[kind].add(value)


class TestIndependentVerifier:
    def test_the_sd_jwt_package_verifies_our_presentations(self) -> None:
        from jwcrypto.jwk import JWK
        from sd_jwt.verifier import SDJWTVerifier

        issuer, key = Issuer(), holder()
        presentation = present(issuer.issue(key), key, nonce="independent-nonce-1")
        public = JWK.from_json(json.dumps(sdjwt.public_jwk(issuer.key)))
        verifier = SDJWTVerifier(
            presentation,
            lambda _iss, _header: public,
            expected_aud=AUDIENCE,
            expected_nonce="independent-nonce-1",
        )
        payload = verifier.get_verified_payload()
        assert payload["tariffs"] == {"transit_reduced": True}
        assert payload["status"]["status_list"]["uri"] == URI

    def test_the_sd_jwt_package_rejects_a_forgery_we_reject(self) -> None:
        from jwcrypto.jwk import JWK
        from sd_jwt.verifier import SDJWTVerifier

        issuer, key = Issuer(), holder()
        presentation = present(issuer.issue(key), key, nonce="independent-nonce-2")
        forged = presentation.replace(
            presentation.split("~")[1], sdjwt.make_disclosure("x", 1).encoded
        )
        public = JWK.from_json(json.dumps(sdjwt.public_jwk(issuer.key)))
        with pytest.raises(Exception):  # noqa: B017 - any refusal of the package
            SDJWTVerifier(
                forged,
                lambda _i, _h: public,
                expected_aud=AUDIENCE,
                expected_nonce="independent-nonce-2",
            )
        with pytest.raises(SdJwtError):
            _verify(issuer, forged)
