"""The public directory through httpx: no sign-in, search by city, category and name,
pages with a cursor, bad searches refused in words."""

from __future__ import annotations

import html
import re

import pytest

from tests.api.web.conftest import Site, words
from tests.merchants.conftest import application

pytestmark = pytest.mark.anyio


def names(page: str) -> list[str]:
    return [html.unescape(n) for n in re.findall(r"<strong>([^<]+)</strong>", page)]


async def test_search_by_city_category_and_name(site: Site) -> None:
    directory = site.merchants.directory
    directory.onboard(application(trade_name="Boulangerie Saint-Marc", city="Rouen"))
    directory.onboard(application(trade_name="Café de la Paix", city="Caen", category="cafe_bar"))
    directory.onboard(application(trade_name="Boulangerie du Port", city="Le Havre"))
    everyone = await site.client.get("/directory")
    assert everyone.status_code == 200
    assert names(everyone.text) == [
        "Boulangerie du Port",
        "Boulangerie Saint-Marc",
        "Café de la Paix",
    ]
    assert names((await site.client.get("/directory?city=le havre")).text) == [
        "Boulangerie du Port"
    ]
    assert names((await site.client.get("/directory?category=cafe_bar")).text) == [
        "Café de la Paix"
    ]
    assert names((await site.client.get("/directory?name=boulangerie&city=Rouen")).text) == [
        "Boulangerie Saint-Marc"
    ]
    nothing = await site.client.get("/directory?city=Paris")
    assert "Aucun commerçant ne correspond à cette recherche." in words(nothing)


async def test_pages_follow_with_a_cursor(site: Site) -> None:
    for n in range(23):
        site.merchants.directory.onboard(application(trade_name=f"Commerce {n:02d}", city="Caen"))
    first = await site.client.get("/directory?city=Caen")
    assert len(names(first.text)) == 20
    link = re.search(r'href="(/directory\?[^"]*cursor=[^"]+)"', first.text)
    assert link is not None
    second = await site.client.get(html.unescape(link.group(1)))
    assert names(second.text) == ["Commerce 20", "Commerce 21", "Commerce 22"]


async def test_bad_searches_say_why(site: Site) -> None:
    for query, expected in [
        ("category=casino", "Choix invalide."),
        ("city=" + "x" * 101, "Ce texte est trop long"),
        ("cursor=garbage", "Refusé"),
    ]:
        answer = await site.client.get(f"/directory?{query}")
        assert answer.status_code == 422, query
        assert expected in words(answer), query
