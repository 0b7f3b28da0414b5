"""The review page in a real browser (Playwright driving Debian's system Chromium) over the API of a real
run: the violation appears with its snapshot, a click plays its H.264 clip, a review persists a reload.
Saves docs/img/review_page.png."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_api import api_server, real_run  # noqa: F401 - real_run is a fixture used here

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "img" / "review_page.png"

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"{CHROMIUM} is absent (Debian: apt-get install chromium; tests/run.sh does)",
    ),
]
playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (dev extra)")


@pytest.fixture
def browser():
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
        )
        try:
            yield browser
        finally:
            browser.close()


def test_review_page_lists_plays_and_marks_a_real_violation(real_run, browser) -> None:  # noqa: F811
    violation = real_run.violations[0]
    vid = violation["id"]
    item_sel = f'.violation[data-id="{vid}"]'
    with api_server(real_run.settings) as http:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(str(http.base_url) + "/")
        page.wait_for_selector(item_sel, timeout=15_000)
        # Cameras with their compliance, the snapshot thumbnail loaded.
        for cam in {v["camera"] for v in real_run.violations}:
            card = page.locator(f'.camera[data-camera="{cam}"]')
            assert card.count() == 1
            assert card.locator(".compliance-hour b").inner_text().endswith("%")
        page.wait_for_function(f"document.querySelector('{item_sel} img').naturalWidth > 0", timeout=10_000)

        # Click: the clip plays (its currentTime advances), or the browser says why it cannot decode it.
        page.click(f"{item_sel} img")
        page.wait_for_function(
            "(() => { const v = document.querySelector('#player'); return v.error || v.currentTime > 0.3; })()",
            timeout=20_000,
        )
        error = page.evaluate(
            "(() => { const e = document.querySelector('#player').error; return e && [e.code, e.message]; })()"
        )
        assert error is None, f"Chromium cannot play the H.264 clip (codec missing?): {error}"
        t1 = page.evaluate("document.querySelector('#player').currentTime")
        page.wait_for_timeout(500)
        assert page.evaluate("document.querySelector('#player').currentTime") > t1, "playback advances"

        # Mark it reviewed: the badge changes, and the state is the API's (it survives a reload).
        page.click(f"{item_sel} .mark-reviewed")
        page.wait_for_selector(f"{item_sel} .badge.reviewed", timeout=10_000)
        page.wait_for_timeout(300)
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        page.reload()
        page.wait_for_selector(f"{item_sel} .badge.reviewed", timeout=15_000)
        assert http.get(f"/api/violations/{vid}").json()["review"]["status"] == "reviewed"
        assert errors == [], errors
    real_run.client.delete("maskwatch:reviews")
