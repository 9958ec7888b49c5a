"""Fixtures of the browser tests: one real server and one headless system Chromium per module.
A missing Chromium or Playwright FAILS these tests (with how to install them); it never skips."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402


@pytest.fixture(scope="module")
def browser():
    missing = None
    try:
        harness.chromium_path()
        manager = harness.sync_playwright()
    except harness.BrowserMissing as exc:
        missing = str(exc)
    if missing:
        pytest.fail(missing, pytrace=False)
    with manager as playwright:
        chromium = harness.launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def inspector_http(tmp_path_factory):
    running = harness.start_inspector(tmp_path_factory.mktemp("browser") / "store")
    yield running
    running.stop(1.0)


@pytest.fixture()
def page(browser):
    """A fresh page; JavaScript errors on it fail the test."""
    context = browser.new_context(viewport={"width": 1500, "height": 950})
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors: {errors}"
