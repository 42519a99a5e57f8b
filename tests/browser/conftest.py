"""Browser tests: Debian's Chromium driven by Playwright's sync API against pytest-django's
live_server. Outside CI they skip (with the reason) when /usr/bin/chromium is missing;
under CI (`CI=true`, set by .ci/run, which installs Chromium) a missing browser fails."""

import os
from pathlib import Path

import pytest
from django.db import connections

from tests.factories import PASSWORD

# Playwright's sync API runs an asyncio loop in this thread; Django refuses ORM calls from a
# thread with a running loop unless told this is deliberate. The ORM calls here are the
# test's own setup, never concurrent with the loop's work.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def chromium(live_server):
    """A fresh browser per test, started after the test's database setup.

    Playwright's sync API keeps an asyncio loop running in this thread; while it runs,
    Django hands out a separate (context-local) database connection. Starting it per test,
    after pytest-django has prepared the database on the ordinary connection, keeps the
    transactional tests' serialized rollback (which restores the roles) working.
    """
    if not CHROMIUM.exists():
        reason = f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run them")
        print(f"\nSkipping: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()
        # Close the context-local connections opened while the loop ran, before it stops.
        connections.close_all()


@pytest.fixture
def page(chromium, live_server):
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, base_url=live_server.url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.problems = []
    page.on("console", lambda message: message.type == "error" and page.problems.append(message.text))
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    page.on("response", lambda response: response.status == 404 and page.problems.append(f"404 {response.url}"))
    page.requested_urls = []
    page.on("request", lambda request: page.requested_urls.append(request.url))
    yield page
    context.close()


def sign_in(page, username):
    page.goto("/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url("**/")
