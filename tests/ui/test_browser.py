"""The message browser in headless Chromium (Debian's chromium + chromedriver, via selenium).

Drives /ui the way an operator does: live counters, search by status, a rejected message's
validation report, the replay of a parked message. Saves screenshots to var/screenshots/ for
a person to look at. Also checks that nothing the sender wrote can inject markup and that no
patient identity reaches the page.
"""

import shutil
from pathlib import Path

import pytest

from gateway.api.operator import COOKIE
from gateway.cli.send import send_mllp
from tests.conftest import ROOT
from tests.tracking.scenario import ORU, PATIENT_TEXT, operator_token, populate, wait_for

pytestmark = pytest.mark.broker

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SCREENSHOTS = ROOT / "var" / "screenshots"
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture
def browser(tmp_path):
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip(
            f"{CHROMIUM} or {CHROMEDRIVER} missing: apt-get install -y chromium chromium-driver"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chromium", ignore_errors=True)


def test_operator_finds_a_rejection_and_replays_a_parked_message(start_gateway, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    gw = start_gateway()
    ids = populate(gw)
    host, port = gw.mllp
    # Another order (another setId): the same order with the same report time would be a
    # conflicting version of the first one, and parked.
    hostile = ORU.replace(b"LAB-000001", HOSTILE.encode()).replace(b"LAB-4242", b"LAB-4243")
    send_mllp(host, port, hostile, timeout=30)
    assert wait_for(
        lambda: gw.services.tracker.flush(5) and gw.services.tracking.search(control_id=HOSTILE)
    )
    wait = WebDriverWait(browser, 10)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    # Operators only: the page is a sign-in form until an operator token is given.
    browser.get(gw.http_url + "/ui")
    assert not browser.find_elements(By.ID, "search")
    browser.save_screenshot(str(SCREENSHOTS / "ui-sign-in.png"))
    field = browser.find_element(By.CSS_SELECTOR, "#login input[name=token]")
    field.send_keys(operator_token(gw))
    browser.find_element(By.CSS_SELECTOR, "#login button").click()
    wait.until(lambda d: d.find_elements(By.ID, "search"))
    kept = browser.get_cookie(COOKIE)
    assert kept["httpOnly"] and kept["sameSite"] == "Strict"
    assert COOKIE not in browser.execute_script("return document.cookie")  # not for scripts
    wait.until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-counters-refreshed")
    )
    count = {
        el.get_attribute("data-status"): int(el.text)
        for el in browser.find_elements(By.CSS_SELECTOR, "#counters .n")
    }
    assert count["filed"] == 3 and count["rejected"] == 1 and count["parked"] == 1
    assert len(browser.find_elements(By.CSS_SELECTOR, "#messages tbody tr")) == 5
    browser.save_screenshot(str(SCREENSHOTS / "ui.png"))

    # Search: rejected only, then open it: its validation report, rule by rule.
    Select(browser.find_element(By.NAME, "status")).select_by_value("rejected")
    browser.find_element(By.CSS_SELECTOR, "#search button").click()
    wait.until(lambda d: "status=rejected" in d.current_url)
    rows = browser.find_elements(By.CSS_SELECTOR, "#messages tbody tr")
    assert [r.get_attribute("data-id") for r in rows] == [ids.rejected]
    rows[0].click()
    report = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#report tbody tr"))
    assert "ins.nir-key" in report[0].text and "check the INS" in report[0].text
    browser.save_screenshot(str(SCREENSHOTS / "ui-rejected.png"))
    assert not browser.find_elements(By.ID, "replay")  # only parked messages can be replayed

    # The parked one: replay it through the broker.
    browser.get(gw.http_url + "/ui?status=parked")
    browser.find_element(By.CSS_SELECTOR, "#messages tbody tr").click()
    button = wait.until(lambda d: d.find_element(By.ID, "replay"))
    assert button.get_attribute("data-id") == ids.parked
    button.click()
    wait.until(lambda d: "replayed to" in d.find_element(By.ID, "replay-result").text)
    assert browser.find_element(By.ID, "replay-result").text == "replayed to patient-record"
    browser.save_screenshot(str(SCREENSHOTS / "ui-replayed.png"))

    # What the sender wrote is shown as text, never run; no patient identity anywhere.
    browser.get(gw.http_url + "/ui?sender=mllp")
    source = browser.page_source
    assert len(browser.find_elements(By.TAG_NAME, "script")) == 1  # /ui/app.js only
    [hostile] = gw.services.tracking.search(control_id=HOSTILE)
    browser.get(gw.http_url + "/ui?selected=" + hostile["trace_id"])
    assert HOSTILE in browser.find_element(By.ID, "detail").text
    assert len(browser.find_elements(By.TAG_NAME, "script")) == 1
    for page in (source, browser.page_source):
        for text in PATIENT_TEXT:
            assert text not in page


@pytest.fixture
def other_site_page():
    """Serves, on another port of the same host (same site, another origin), a page whose
    form posts itself to the URL ``set_target`` gave."""
    import http.server
    import threading

    target: dict[str, str] = {}

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            page = (
                f"<form id='f' method='post' action='{target['url']}'></form>"
                "<script>document.getElementById('f').submit()</script>"
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/", lambda url: target.update(url=url)
    server.shutdown()
    server.server_close()


def test_a_page_of_another_origin_cannot_replay_with_the_operators_cookie(
    start_gateway, browser, other_site_page
):
    """SameSite=Strict still sends the cookie from another port of the same host: the
    replay refuses a cookie-authenticated request that does not come from /ui itself."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    gw = start_gateway()
    browser.get(gw.http_url + "/ui")
    browser.add_cookie(
        {"name": COOKIE, "value": operator_token(gw), "httpOnly": True, "sameSite": "Strict"}
    )
    page, aim = other_site_page
    aim(gw.http_url + "/messages/" + "0" * 32 + "/replay")  # let in, it would be a 404
    browser.get(page)
    body = WebDriverWait(browser, 10).until(
        lambda d: "/replay" in d.current_url and d.find_element(By.TAG_NAME, "body").text
    )
    assert "own pages" in body, body
