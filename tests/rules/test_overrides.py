"""What-if overrides are finite values in each parameter's declared range (issue 11, finding 7:
`1e999999999` ran for minutes and took 5 GB; NaN, Infinity and 1e308 answered 500)."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from socialcard.core.errors import InvalidInput
from socialcard.rules import service
from socialcard.rules.engine import CompiledPack, EvaluationError, PackError, Period, load_pack
from socialcard.security import service as security_service
from tests.rules.conftest import PACK_YAML, MakePack, program

SIMULATIONS = "/api/v1/rules/simulations"


class TestParseOverrides:
    @pytest.mark.parametrize(
        ("name", "value", "reason"),
        [
            ("kz.mrp", "1e999999999", "must be between 0 and 1000000000000000 (money)"),
            ("kz.mrp", "-1", "must be between 0 and 1000000000000000 (money)"),
            ("kz.mrp", 1e308, "must be between 0 and 1000000000000000 (money)"),
            ("kz.mrp", float("inf"), "must be a finite number"),
            ("kz.mrp", float("nan"), "must be a finite number"),
            ("kz.mrp", "NaN", "must be a finite number"),
            ("kz.mrp", "-Infinity", "must be a finite number"),
            ("kz.mrp", "4325.5", "must be a whole number (money is in minor units)"),
            ("kz.mrp", True, "must be a number"),
            ("kz.asp.poverty_line_share", 5, "must be between 0 and 3 (number)"),
            ("kz.asp.poverty_line_share", "0.1e-20", "at most 12 decimal places"),
            ("kz.asp.poverty_line_share", "1" * 5000, "is not a number, date or boolean"),
        ],
    )
    def test_a_value_out_of_range_or_type_is_a_422_naming_it(
        self, kz: CompiledPack, name: str, value: Any, reason: str
    ) -> None:
        started = time.monotonic()
        with pytest.raises(InvalidInput) as refused:
            service.parse_overrides(kz, {name: value})
        assert time.monotonic() - started < 1
        [error] = refused.value.details
        assert error["field"] == f"overrides.{name}"
        assert reason in error["reason"], error

    def test_values_in_range_are_typed(self, kz: CompiledPack) -> None:
        typed = service.parse_overrides(
            kz,
            {
                "kz.mrp": "5000_00",
                "kz.asp.poverty_line_share": 0.9,
                "kz.large_family.coef.4": "20.5",
            },
        )
        assert typed == {
            "kz.mrp": 500_000,
            "kz.asp.poverty_line_share": Decimal("0.9"),
            "kz.large_family.coef.4": Decimal("20.5"),
        }

    def test_the_engine_refuses_them_too(self, kz: CompiledPack) -> None:
        with pytest.raises(EvaluationError, match="finite"):
            kz.param_values(Period.parse("2026-03"), {"kz.mrp": Decimal("NaN")})
        with pytest.raises(EvaluationError, match="between"):
            kz.param_values(Period.parse("2026-03"), {"kz.mrp": Decimal("1e999999999")})


class TestDeclaredRanges:
    def test_a_pack_declares_a_range(self, make_pack: MakePack) -> None:
        pack = PACK_YAML.replace("    unit: money\n", "    unit: money\n    range: [0, 10000_00]\n")
        compiled = load_pack(make_pack(pack, p=program()))
        assert compiled.check_override("t.mrp", 9_000_00) == 9_000_00
        with pytest.raises(EvaluationError, match="between 0 and 1000000"):
            compiled.check_override("t.mrp", 10_001_00)

    @pytest.mark.parametrize(
        ("declared", "problem"),
        [
            ("[5]", "range is [low, high], two numbers"),
            ("[a, b]", "range is [low, high], two numbers"),
            ("[10, 1]", "range [10, 1] is empty"),
            ("[0, 100]", "its value 369200 on 2024-01-01 is outside its range"),
        ],
    )
    def test_a_bad_range_is_a_pack_problem(
        self, make_pack: MakePack, declared: str, problem: str
    ) -> None:
        pack = PACK_YAML.replace("    unit: money\n", f"    unit: money\n    range: {declared}\n")
        with pytest.raises(PackError) as failed:
            load_pack(make_pack(pack, p=program()))
        assert any(problem in p.reason for p in failed.value.problems), failed.value


class TestSimulationRoute:
    @pytest.mark.parametrize(
        ("body", "field"),
        [
            (b'{"period": "2026-03", "overrides": {"kz.mrp": "1e999999999"}}', "overrides.kz.mrp"),
            (b'{"period": "2026-03", "overrides": {"kz.mrp": 1e308}}', "overrides.kz.mrp"),
            (b'{"period": "2026-03", "overrides": {"kz.mrp": -1e308}}', "overrides.kz.mrp"),
            (b'{"period": "2026-03", "overrides": {"kz.mrp": "NaN"}}', "overrides.kz.mrp"),
            (b'{"period": "2026-03", "overrides": {"kz.mrp": "Infinity"}}', "overrides.kz.mrp"),
            (b'{"period": "2026-03", "overrides": {"kz.mrp": NaN}}', "body"),
            (b'{"period": "2026-03", "overrides": {"kz.mrp": Infinity}}', "body"),
            (b'{"period": "2026-03", "overrides": {"kz.mrp": 1e999}}', "body"),
        ],
    )
    def test_is_a_422_at_once(
        self, client: TestClient, session: Session, body: bytes, field: str
    ) -> None:
        key = security_service.create_api_key(session, name="p", role="policy_owner").key
        started = time.monotonic()
        response = client.post(
            SIMULATIONS,
            content=body,
            headers={"X-API-Key": key, "content-type": "application/json"},
        )
        assert time.monotonic() - started < 5
        assert response.status_code == 422, response.text
        problem = response.json()
        assert problem["code"] == "invalid_input"
        assert problem["errors"][0]["field"] == field
