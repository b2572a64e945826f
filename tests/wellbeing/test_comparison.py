"""Comparing two methodologies over one snapshot, and methodology versions by effective date."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from socialcard.wellbeing import service
from socialcard.wellbeing.errors import MethodologyNotFound
from socialcard.wellbeing.methodology import Methodology, load_methodology
from tests.wellbeing.conftest import Families
from tests.wellbeing.helpers import BOUNDARY_FAMILIES, METHODOLOGY, PERIOD, make_pack, tables


def _version(root: Path, effective: str, b_cut: int, name: str) -> Path:
    text = METHODOLOGY.replace("effective_from: 2024-01-01", f"effective_from: {effective}")
    return make_pack(root, text.replace("min_score: 0", f"min_score: {b_cut}"), name)


class TestCompare:
    def test_a_raised_cut_off_moves_exactly_the_families_between_the_two_cuts(
        self, tmp_path: Path, methodology: Methodology, boundary_families: Families
    ) -> None:
        reform = load_methodology(_version(tmp_path, "2024-01-01", 5, "reform.yaml"))
        person, fact = tables(boundary_families)
        result = service.compare(
            baseline=methodology, reform=reform, period=PERIOD, person=person, fact=fact
        )
        # B starts at 0 under the baseline, at 5 under the reform: families scoring 0..4 fall
        # from B to C; nobody else moves.
        falling = sorted(k for k, (_, score, _) in BOUNDARY_FAMILIES.items() if 0 <= score < 5)
        assert falling  # the boundary families include one
        assert (result.moved, result.better, result.worse) == (len(falling), 0, len(falling))
        assert result.families == len(BOUNDARY_FAMILIES)
        moves = {(m.from_level, m.to_level): m.families for m in result.moves}
        assert moves[("B", "C")] == len(falling)
        assert sum(moves.values()) == result.families
        # Counts per level agree with the moves under each methodology.
        for side, index in ((result.baseline, 0), (result.reform, 1)):
            for level in side.levels:
                moved_here = sum(n for pair, n in moves.items() if pair[index] == level.level)
                assert level.families == moved_here

    def test_two_scales_give_the_full_table_and_no_single_moved_count(
        self, methodology: Methodology, boundary_families: Families
    ) -> None:
        other = load_methodology(
            Path(__file__).resolve().parents[2] / "packs" / "kz" / "wellbeing" / "scoring_2025.yaml"
        )
        person, fact = tables(boundary_families)
        result = service.compare(
            baseline=methodology, reform=other, period=PERIOD, person=person, fact=fact
        )
        assert (result.moved, result.better, result.worse) == (None, None, None)
        assert sum(m.families for m in result.moves) == len(BOUNDARY_FAMILIES)
        assert [lv.level for lv in result.reform.levels] == ["6", "5", "4", "3", "2", "1"]


class TestVersions:
    def test_the_version_in_force_at_the_period_end_is_taken(self, tmp_path: Path) -> None:
        first = _version(tmp_path, "2024-01-01", 0, "v2024.yaml")
        second = _version(tmp_path, "2026-04-01", 5, "v2026.yaml")
        folder = first.parent
        assert service.resolve_methodology("kz.wellbeing.test", folder=folder) == second
        pick = service.resolve_methodology
        assert pick("kz.wellbeing.test", folder=folder, period="2026-03") == first
        assert pick("kz.wellbeing.test", folder=folder, period="2026-04") == second
        with pytest.raises(MethodologyNotFound) as caught:
            pick("kz.wellbeing.test", folder=folder, period="2023-12")
        assert caught.value.details == [
            {"field": "period", "reason": "kz.wellbeing.test applies from 2024-01-01"}
        ]


class TestApi:
    def test_compares_the_shipped_methodologies_over_the_registry(
        self, client: TestClient, operator_headers: dict[str, str]
    ) -> None:
        response = client.post(
            "/api/v1/wellbeing/comparisons",
            json={"reform": "kz.wellbeing.scoring_2025", "period": PERIOD},
            headers=operator_headers,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["baseline"]["id"] == "kz.wellbeing.cks_2023"
        assert body["moved"] is None

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"reform": "../../etc/passwd", "period": PERIOD}, "reform"),
            ({"reform": "kz.wellbeing.scoring_2025", "period": "March"}, "period"),
            ({"reform": "kz.wellbeing.scoring_2025", "period": PERIOD, "x": 1}, "x"),
        ],
    )
    def test_bad_bodies_name_the_field(
        self,
        client: TestClient,
        operator_headers: dict[str, str],
        body: dict[str, object],
        field: str,
    ) -> None:
        response = client.post("/api/v1/wellbeing/comparisons", json=body, headers=operator_headers)
        assert response.status_code == 422
        assert field in {e["field"] for e in response.json()["errors"]}

    def test_an_unknown_methodology_is_a_404(
        self, client: TestClient, operator_headers: dict[str, str]
    ) -> None:
        response = client.post(
            "/api/v1/wellbeing/comparisons",
            json={"reform": "kz.wellbeing.none", "period": PERIOD},
            headers=operator_headers,
        )
        assert response.status_code == 404
        assert response.json()["code"] == "wellbeing_methodology_not_found"
