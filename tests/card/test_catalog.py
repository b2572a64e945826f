"""The status and tariff catalogue: neutral codes, national and regional tariffs, a region's
own file, and the checks that refuse a bad one."""

from __future__ import annotations

from pathlib import Path

import pytest

from socialcard.card.catalog import DEFAULT_PATH, load_catalog
from socialcard.card.errors import CatalogInvalid

REGIONAL = """
providers:
  shymkent_bus:
    title: {kk: Шымкент автобусы, ru: Автобусы Шымкента, en: Shymkent buses}
    regions: ["79"]
tariffs:
  city_bus_free:
    title: {kk: Тегін автобус, ru: Бесплатный автобус, en: Free bus}
    statuses: [large_family, pensioner]
    regions: ["79"]
    providers: [shymkent_bus]
"""


TARIFF = "tariffs:\n  {code}:\n    title: {{kk: a, ru: b, en: c}}\n    {extra}\n"


class TestCatalog:
    def test_the_issue_statuses_are_all_there(self) -> None:
        catalog = load_catalog([DEFAULT_PATH])
        assert {
            "pensioner", "disability", "large_family", "asp_recipient", "awarded_mother",
            "student", "disabled_child_family", "labour_veteran",
        } <= set(catalog.statuses)  # fmt: skip
        assert {"transit_reduced", "pharmacy_discount", "museum_free", "school_meal"} <= set(
            catalog.tariffs
        )
        programs = set(catalog.programs())
        assert {"kz.base_pension", "kz.asp", "kz.student", "ru_orenburg.pensioner"} <= programs

    def test_national_tariffs_everywhere_regional_ones_at_home(self) -> None:
        catalog = load_catalog([DEFAULT_PATH])
        almaty = catalog.tariffs_for(["pensioner"], "751110000")
        astana = catalog.tariffs_for(["pensioner"], "711110000")
        assert "transit_reduced" in almaty
        assert "transit_reduced" in astana
        assert "metro_free" in almaty
        assert "metro_free" not in astana
        assert catalog.tariffs_for([], "751110000") == []

    def test_a_region_adds_its_own_tariffs_and_providers(self, tmp_path: Path) -> None:
        extra = tmp_path / "shymkent.yaml"
        extra.write_text(REGIONAL, encoding="utf-8")
        catalog = load_catalog([DEFAULT_PATH, extra])
        assert "city_bus_free" in catalog.tariffs_for(["large_family"], "791010000")
        assert "city_bus_free" not in catalog.tariffs_for(["large_family"], "751110000")

    @pytest.mark.parametrize(
        ("text", "where"),
        [
            (
                TARIFF.format(code="disability_fare", extra="statuses: [disability]"),
                "disability_fare",
            ),
            (
                TARIFF.format(code="free_x", extra="statuses: [pensioner]\n    regions: [Almaty]"),
                "regions",
            ),
            (
                "tariffs:\n  free_x:\n    title: {kk: a, ru: b, en: c}\n    statuses: [nobody]\n",
                "statuses",
            ),
            ("tariffs:\n  free_x:\n    title: {ru: b}\n    statuses: [pensioner]\n", "title"),
            (
                TARIFF.format(code="transit_reduced", extra="statuses: [pensioner]"),
                "transit_reduced",
            ),
        ],
    )
    def test_a_bad_file_is_refused_naming_where(
        self, tmp_path: Path, text: str, where: str
    ) -> None:
        extra = tmp_path / "bad.yaml"
        extra.write_text(text, encoding="utf-8")
        with pytest.raises(CatalogInvalid) as raised:
            load_catalog([DEFAULT_PATH, extra])
        assert where in raised.value.message
