"""The desk in a real browser: Debian's headless Chromium driven by selenium through
chromedriver. The list loads, its form filters, a claim page opens, hostile titles stay text,
no script is in the page and no dialog opened; screenshots go to test-artifacts/."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.desk.view import MemoryDeskView
from monitor.desk.web import DeskServer
from tests.conftest import REPO
from tests.desk.webdesk import CLAIMS, HOSTILE_TITLE, MARKDOWN_TITLE, desk_matches, settings

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
           "chromium-driver; .ci/run installs them)")
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture
def desk() -> Iterator[str]:
    server = DeskServer(MemoryDeskView(desk_matches()), lambda: CLAIMS, settings())
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options,
                              service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def assert_no_script_ran(browser: webdriver.Chrome) -> None:
    assert browser.find_elements(By.TAG_NAME, "script") == []
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 - reading it is the check


def test_the_desk_in_a_real_browser(desk: str, browser: webdriver.Chrome) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    browser.get(f"{desk}/")
    assert browser.title == "Claim desk"
    ids = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "table.claims .id")]
    assert [i.split(" ")[0] for i in ids] == ["generals-2022", "zapad-exercises", "grain-deal",
                                            "quiet-claim"]
    header = browser.find_element(By.CSS_SELECTOR, "header.top")
    assert header.value_of_css_property("background-color") == "rgba(32, 33, 36, 1)"  # CSS ran
    browser.save_screenshot(str(ARTIFACTS / "desk-list.png"))

    Select(browser.find_element(By.NAME, "tag")).select_by_value("belarus")
    Select(browser.find_element(By.NAME, "relation")).select_by_value("denial")
    browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    # click() returns before the browser has navigated (seen once in CI): wait for the URL.
    WebDriverWait(browser, 10).until(expected_conditions.url_contains("relation=denial"))
    assert "tag=belarus" in browser.current_url and "relation=denial" in browser.current_url
    rows = browser.find_elements(By.CSS_SELECTOR, "table.claims tbody tr")
    assert len(rows) == 1 and "generals-2022" in rows[0].text
    assert "1 of 4 claims" in browser.find_element(By.CSS_SELECTOR, "p.count").text

    rows[0].find_element(By.CSS_SELECTOR, "a.claim").click()
    WebDriverWait(browser, 10).until(expected_conditions.url_contains("/claims/"))
    assert browser.current_url == f"{desk}/claims/generals-2022"
    carrier = browser.find_element(By.ID, "item-a")
    assert carrier.find_element(By.CSS_SELECTOR, ".title").text == HOSTILE_TITLE
    carrier.find_element(By.CSS_SELECTOR, "details summary").click()  # no JS: native folding
    reprint = browser.find_element(By.ID, "item-b")
    assert MARKDOWN_TITLE in reprint.text
    assert reprint.find_element(By.CSS_SELECTOR, "a.title").get_attribute("href") == \
        "https://ria.example/b"  # the markdown did not become a link to evil.example
    script_link = browser.find_element(By.ID, "item-c")
    assert script_link.find_elements(By.CSS_SELECTOR, "a") == []
    assert "javascript:alert(2)" in script_link.find_element(By.CSS_SELECTOR, ".badlink").text
    hrefs = [a.get_attribute("href") for a in browser.find_elements(By.TAG_NAME, "a")]
    assert all(href.startswith(("http://127.0.0.1:", "https://")) for href in hrefs), hrefs
    assert_no_script_ran(browser)
    browser.save_screenshot(str(ARTIFACTS / "desk-claim.png"))
    assert (ARTIFACTS / "desk-list.png").stat().st_size > 10_000
    assert (ARTIFACTS / "desk-claim.png").stat().st_size > 10_000
