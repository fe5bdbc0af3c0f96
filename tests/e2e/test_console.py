"""The web console in a real browser (decision 99): Debian's headless Chromium driven by
Selenium against the running platform. A person signs in with email and password, sees the
fleet overview, finds the device this test created and its chart of readings, acknowledges
the alert this test caused with a comment, and signs out. Screenshots of each page go to
``build/console-screenshots/``; axe-core finds no serious or critical violation on any page.

Every wait is an explicit Selenium wait for a condition of the page, never a sleep.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from _keys import bearer
from _poll import eventually

pytestmark = pytest.mark.e2e

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "build" / "console-screenshots"
AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
PASSWORD = "console correct horse battery"
WAIT = 30


def _browser_paths() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip(
            "Debian's chromium and chromium-driver are not installed (make test installs them"
            " with tools/browser.sh where apt-get is available)"
        )
    return chromium, driver


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    chromium, driver_path = _browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--lang=en-GB",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver: WebDriver) -> WebDriverWait[WebDriver]:
    return WebDriverWait(driver, WAIT)


def _heading(driver: WebDriver, text: str) -> None:
    _wait(driver).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "main h1"), text))


def _shot(driver: WebDriver, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def _serious_violations(driver: WebDriver) -> list[dict[str, Any]]:
    """axe-core's WCAG 2 A/AA rules over the page as it is; the serious and critical ones."""
    if not driver.execute_script("return typeof window.axe !== 'undefined'"):
        driver.execute_script(AXE.read_text())
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa']}})"
        ".then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact,"
        " nodes: v.nodes.map(n => n.target.join(' '))}))))"
        ".catch(e => done([{id: 'axe-error', impact: 'critical', nodes: [String(e)]}]));"
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]


def _button(driver: WebDriver, alert_id: str, label: str) -> Any:
    """An alert row's button, found when clickable (the list may re-render live)."""
    xpath = f"//tr[@data-alert='{alert_id}']//button[normalize-space()='{label}']"
    return _wait(driver).until(ec.element_to_be_clickable((By.XPATH, xpath)))


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
def seeded(http: httpx.Client, tenants: Any, raise_limits: Any) -> dict[str, Any]:
    """An organization with an admin who signs in, a device with an hour of readings of
    ``temp`` (the last above the rule's threshold) and the open alert they caused."""
    org = tenants.org("console")
    raise_limits(org["id"])
    key = tenants.key(org["id"])["key"]
    email = f"console-{uuid.uuid4().hex[:8]}@example.com"
    user = http.post(
        "/api/v1/users",
        json={"email": email, "password": PASSWORD, "role": "admin"},
        headers=bearer(key),
    )
    assert user.status_code == 201, user.text
    # The same person in a second organization: signing in names the one to open.
    other = tenants.org("console-other")
    member = http.post(
        "/api/v1/users",
        json={"email": email, "password": "chosen by the other, unused", "role": "viewer"},
        headers=bearer(tenants.key(other["id"])["key"]),
    )
    assert member.status_code == 201, member.text
    name = f"boiler-{uuid.uuid4().hex[:6]}"
    device = http.post("/api/v1/devices", json={"name": name}, headers=bearer(key))
    assert device.status_code == 201, device.text
    device_id = device.json()["id"]
    rule = http.post(
        "/api/v1/alert-rules",
        json={
            "name": "boiler too hot",
            "scope": {"type": "DEVICE", "id": device_id},
            "sensor": "temp",
            "condition": {"op": ">", "threshold": 90},
            "severity": "CRITICAL",
        },
        headers=bearer(key),
    )
    assert rule.status_code == 201, rule.text
    warm = http.post(
        "/api/v1/alert-rules",
        json={
            "name": "boiler warm",
            "scope": {"type": "DEVICE", "id": device_id},
            "sensor": "temp",
            "condition": {"op": ">", "threshold": 80},
            "severity": "WARNING",
        },
        headers=bearer(key),
    )
    assert warm.status_code == 201, warm.text
    now = datetime.now(UTC).replace(microsecond=0)
    points = [(now - timedelta(minutes=60 - i), 60.0 + (i % 7)) for i in range(59)]
    points.append((now - timedelta(seconds=30), 95.5))
    body = {
        "readings": [
            {"deviceId": device_id, "sensor": "temp", "ts": _iso(t), "value": v} for t, v in points
        ]
    }

    def send() -> bool:
        resp = http.post("/api/v1/readings/batch", json=body, headers=bearer(key))
        assert resp.status_code == 202, resp.text
        return bool(resp.json()["accepted"] == len(points))

    # readings learns of the device from its event; the batch is accepted once it has
    assert eventually(send)

    def open_alerts() -> list[dict[str, Any]]:
        got = http.get(
            "/api/v1/alerts",
            params={"deviceId": device_id, "status": "OPEN"},
            headers=bearer(key),
        )
        assert got.status_code == 200, got.text
        return list(got.json()["data"])

    alerts = eventually(lambda: len(open_alerts()) == 2 and open_alerts())
    assert alerts and len(alerts) == 2, alerts
    by_rule = {a["ruleId"]: a for a in alerts}

    def latest() -> bool:
        got = http.get(
            "/api/v1/readings/latest", params={"deviceId": device_id}, headers=bearer(key)
        )
        return got.status_code == 200 and len(got.json()["data"]) == 1

    assert eventually(latest)
    return {
        "org": org["id"],
        "key": key,
        "email": email,
        "device": {"id": device_id, "name": name},
        "alert": by_rule[rule.json()["id"]],  # acknowledged and resolved in the browser
        "other": by_rule[warm.json()["id"]],  # acknowledged through the API: seen live
    }


def test_sign_in_see_the_device_and_its_chart_acknowledge_the_alert_sign_out(
    browser: WebDriver, platform: dict[str, Any], http: httpx.Client, seeded: dict[str, Any]
) -> None:
    driver = browser
    base = platform["gatewayUrl"].rstrip("/")
    violations: dict[str, list[dict[str, Any]]] = {}

    # --- sign in ---------------------------------------------------------------------------
    driver.get(base + "/")
    email = _wait(driver).until(ec.element_to_be_clickable((By.ID, "email")))
    _heading(driver, "Sign in to Outpost")
    violations["sign-in"] = _serious_violations(driver)
    _shot(driver, "sign-in")
    email.send_keys(seeded["email"])
    driver.find_element(By.ID, "password").send_keys("not the password")
    driver.find_element(By.CSS_SELECTOR, "form.sign-in button[type=submit]").click()
    _wait(driver).until(ec.text_to_be_present_in_element((By.ID, "sign-in-error"), "not valid"))
    password = driver.find_element(By.ID, "password")
    password.clear()
    password.send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "form.sign-in button[type=submit]").click()
    # a member of two organizations: the form asks which, and takes the focus there
    organization = _wait(driver).until(ec.visibility_of_element_located((By.ID, "organization")))
    _wait(driver).until(ec.text_to_be_present_in_element((By.ID, "sign-in-error"), "several"))
    assert driver.switch_to.active_element == organization
    organization.send_keys(seeded["org"])
    driver.find_element(By.CSS_SELECTOR, "form.sign-in button[type=submit]").click()

    # --- the overview: one device, one open alert --------------------------------------------
    _heading(driver, "Fleet overview")

    def figure(label: str) -> str:
        return str(
            _wait(driver)
            .until(
                ec.visibility_of_element_located(
                    (By.CSS_SELECTOR, f'[data-figure="{label}"] .figure-value')
                )
            )
            .text
        )

    assert figure("Devices") == "1"
    assert figure("Registered") == "1"
    assert figure("Open alerts") == "2"
    switcher = Select(driver.find_element(By.ID, "org-switch"))
    assert switcher.first_selected_option.get_attribute("value") == seeded["org"]
    violations["overview"] = _serious_violations(driver)
    _shot(driver, "overview")

    # No secret where a script could read it: the refresh token is an HttpOnly cookie, the
    # access token only in the module's memory.
    storage = driver.execute_script(
        "return [document.cookie, JSON.stringify(localStorage), JSON.stringify(sessionStorage)]"
    )
    assert all("eyJ" not in part and "refresh" not in part.lower() for part in storage), storage

    # A reload resumes the session from the cookie, without the password.
    driver.refresh()
    _heading(driver, "Fleet overview")
    assert figure("Open alerts") == "2"

    # --- devices: search finds the device; its page has sensors and a chart ---------------
    driver.find_element(By.LINK_TEXT, "Devices").click()
    _heading(driver, "Devices")
    search = _wait(driver).until(ec.element_to_be_clickable((By.ID, "device-search")))
    search.send_keys(seeded["device"]["name"][:9])
    Select(driver.find_element(By.ID, "device-status")).select_by_value("REGISTERED")
    driver.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    link = _wait(driver).until(ec.element_to_be_clickable((By.LINK_TEXT, seeded["device"]["name"])))
    violations["devices"] = _serious_violations(driver)
    _shot(driver, "devices")
    link.click()
    _heading(driver, seeded["device"]["name"])
    _wait(driver).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, "section table"), "95.5")
    )
    canvas = _wait(driver).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, ".chart .uplot canvas"))
    )
    assert canvas.size["width"] > 200 and canvas.size["height"] > 100
    summary = driver.find_element(By.ID, "chart-summary").text
    # 24 hours over a chart ~1000 px wide: 5-minute buckets (1-minute ones would be 1440)
    assert "buckets of 5m" in summary, summary
    violations["device"] = _serious_violations(driver)
    _shot(driver, "device")

    # --- alerts: acknowledge with a comment -------------------------------------------------
    alert_id = seeded["alert"]["id"]
    driver.find_element(By.LINK_TEXT, "Alerts").click()
    _heading(driver, "Alerts")
    _wait(driver).until(
        ec.text_to_be_present_in_element(
            (By.CSS_SELECTOR, f'tr[data-alert="{alert_id}"]'), "temp > 90"
        )
    )
    violations["alerts"] = _serious_violations(driver)
    _shot(driver, "alerts")
    _button(driver, alert_id, "Acknowledge").click()
    comment = _wait(driver).until(ec.visibility_of_element_located((By.ID, "transition-comment")))
    assert driver.switch_to.active_element == comment  # the dialog takes the focus
    comment.send_keys("on it: burner checked")
    violations["acknowledge dialog"] = _serious_violations(driver)
    _shot(driver, "acknowledge")
    driver.find_element(By.ID, "transition-confirm").click()
    _wait(driver).until(ec.text_to_be_present_in_element((By.ID, "status"), "Alert acknowledged."))
    _wait(driver).until(
        ec.invisibility_of_element_located((By.CSS_SELECTOR, f'tr[data-alert="{alert_id}"]'))
    )
    # Live: the other alert, acknowledged through the API while the page is open, leaves the
    # open list without a reload (the page follows /api/v1/events/stream).
    other_id = seeded["other"]["id"]
    _wait(driver).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, f'tr[data-alert="{other_id}"]'))
    )
    by_api = http.post(
        f"/api/v1/alerts/{other_id}/acknowledge",
        json={"comment": "seen from the API"},
        headers=bearer(seeded["key"]),
    )
    assert by_api.status_code == 200, by_api.text
    _wait(driver).until(
        ec.invisibility_of_element_located((By.CSS_SELECTOR, f'tr[data-alert="{other_id}"]'))
    )
    _wait(driver).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "main"), "No open"))
    acked = http.get(f"/api/v1/alerts/{alert_id}", headers=bearer(seeded["key"])).json()
    assert (acked["status"], acked["acknowledgeComment"]) == (
        "ACKNOWLEDGED",
        "on it: burner checked",
    )
    Select(driver.find_element(By.ID, "alert-status")).select_by_value("ACKNOWLEDGED")
    driver.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    _wait(driver).until(
        ec.text_to_be_present_in_element(
            (By.CSS_SELECTOR, f'tr[data-alert="{alert_id}"]'), "burner checked"
        )
    )
    # ... and resolve it by hand, with a comment
    _button(driver, alert_id, "Resolve").click()
    comment = _wait(driver).until(ec.visibility_of_element_located((By.ID, "transition-comment")))
    comment.send_keys("burner replaced")
    driver.find_element(By.ID, "transition-confirm").click()
    _wait(driver).until(ec.text_to_be_present_in_element((By.ID, "status"), "Alert resolved."))
    _wait(driver).until(
        ec.invisibility_of_element_located((By.CSS_SELECTOR, f'tr[data-alert="{alert_id}"]'))
    )
    resolved = http.get(f"/api/v1/alerts/{alert_id}", headers=bearer(seeded["key"])).json()
    assert (resolved["status"], resolved["resolveComment"], resolved["resolution"]) == (
        "RESOLVED",
        "burner replaced",
        "MANUAL",
    )

    # --- a phone-sized screen -----------------------------------------------------------------
    driver.set_window_size(390, 844)
    driver.find_element(By.LINK_TEXT, "Overview").click()
    _heading(driver, "Fleet overview")
    _wait(driver).until(
        ec.text_to_be_present_in_element(
            (By.CSS_SELECTOR, '[data-figure="Acknowledged alerts"] .figure-value'), "1"
        )
    )
    violations["overview (phone)"] = _serious_violations(driver)
    _shot(driver, "overview-phone")
    driver.set_window_size(1280, 900)

    # --- sign out: the session ends, a reload does not resume it -------------------------------
    driver.find_element(By.ID, "sign-out").click()
    _heading(driver, "Sign in to Outpost")
    driver.refresh()
    _wait(driver).until(ec.element_to_be_clickable((By.ID, "email")))
    _heading(driver, "Sign in to Outpost")

    assert {page: v for page, v in violations.items() if v} == {}
