"""Fixtures of the rules tests: the compiled packs and a pack builder; no store involved."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from socialcard.rules.engine import CompiledPack, OnlineEvaluator, load_pack

ROOT = Path(__file__).resolve().parents[2]
KZ = ROOT / "packs" / "kz"
RU = ROOT / "packs" / "ru_orenburg"

PACK_YAML = """\
id: t
title: {kk: T, ru: T, en: T}
country: KZ
currency: {code: KZT, symbol: "₸", minor_per_major: 100}
parameters:
  mrp:
    unit: money
    values: {2024-01-01: 3692_00, 2025-01-01: 3932_00}
"""


@pytest.fixture(scope="session")
def kz() -> CompiledPack:
    return load_pack(KZ)


@pytest.fixture(scope="session")
def ru() -> CompiledPack:
    return load_pack(RU)


@pytest.fixture(scope="session")
def kz_online(kz: CompiledPack) -> Iterator[OnlineEvaluator]:
    evaluator = OnlineEvaluator(kz)
    yield evaluator
    evaluator.close()


MakePack = Callable[..., Path]


@pytest.fixture
def make_pack(tmp_path: Path) -> MakePack:
    """Write a pack: `pack` is pack.yaml's text, each keyword a program file's text."""

    def make(pack: str = PACK_YAML, **programs: str) -> Path:
        (tmp_path / "pack.yaml").write_text(textwrap.dedent(pack), encoding="utf-8")
        for name, text in programs.items():
            (tmp_path / f"{name}.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
        return tmp_path

    return make


def program(
    *,
    id: str = "t.p",
    entity: str = "family",
    conditions: str = "ok: {when: 'true', explain: {kk: ok, ru: ok, en: ok}}",
    amount: str = "mrp",
    rounding: str = "{mode: half_up, unit: 100, why: test}",
    variables: str = "",
    parameters: str = "",
    tests: str = "",
) -> str:
    """A small program file; pieces are YAML flow text."""
    return f"""\
id: {id}
title: {{kk: P, ru: P, en: P}}
legal_basis: {{text: Law, citation: "Law 1"}}
entity: {entity}
period: month
parameters: {parameters or "{}"}
versions:
  - from: 2024-01-01
    rounding: {rounding}
    variables: {variables or "{}"}
    conditions: {{{conditions}}}
    amount: "{amount}"
tests: {tests or "[{name: one, period: 2025-01, members: [{age: 40}], eligible: true}]"}
"""
