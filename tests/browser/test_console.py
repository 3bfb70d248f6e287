"""The console against real labs, in headless Chromium: log in, the overview's picture,
a switchover from the UI seen without reloading, publication and subscription created
through the forms, a lag chart with data points; plus the agents' history endpoint and
``pgherd cluster cleanup``. Screenshots of every page go to test-artifacts/console/."""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from pgherd.clients.history import HistoryClient
from pgherd.model.history import SampleKind
from tests.browser.conftest import ARTIFACTS, OPERATOR, Console, start_console, stop_console
from tests.e2e.conftest import Lab, start_lab, stop_lab
from tests.support import pgherd, query, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def lab(module_dir: Path) -> Iterator[Lab]:
    # As a newcomer's `lab up` makes it: automatic failover, here with an archive too.
    found = start_lab(module_dir / "lab", 3, "--archive", "--failover", "automatic")
    yield found
    stop_lab(found)


@pytest.fixture(scope="module")
def console(lab: Lab) -> Iterator[Console]:
    found = start_console(lab)
    yield found
    stop_console(found)


@pytest.fixture(scope="module")
def pair(module_dir: Path) -> Iterator[Lab]:
    found = start_lab(module_dir / "pair", 2, "--independent")
    yield found
    stop_lab(found)


@pytest.fixture(scope="module")
def pair_console(pair: Lab) -> Iterator[Console]:
    found = start_console(pair)
    yield found
    stop_console(found)


def log_in(browser: Browser, console: Console, width: int = 1280) -> Page:
    page = browser.new_context(viewport={"width": width, "height": 900}).new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{console.url}/")
    expect(page).to_have_url(f"{console.url}/login?next=/")
    page.fill("#user", OPERATOR[0])
    page.fill("#password", OPERATOR[1])
    page.click("button[type=submit]")
    expect(page.locator("#topology")).to_be_visible()
    return page


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def node_box(page: Page, name: str, role: str) -> Locator:
    return page.locator(f'#topology g.node[data-node="{name}"][data-role="{role}"]')


def test_history_endpoint_returns_samples(lab: Lab) -> None:
    client = HistoryClient(lab.config.node("node1"))

    def standbys() -> set[str]:
        subjects = {s.subject for s in client.history(kind=SampleKind.STANDBY).samples}
        return subjects if subjects >= {"node2", "node3"} else set()

    # (a sample taken while lab up cloned node3 also has pg_basebackup's stream)
    assert wait_until(standbys, timeout=30, what="standby samples on node1") >= {"node2", "node3"}
    archive = client.history(kind=SampleKind.ARCHIVE).samples
    assert all(s.source == "node1" and s.lag_bytes is not None for s in archive)


@pytest.mark.browser
def test_overview_shows_three_nodes_and_pages_render(browser: Browser, console: Console) -> None:
    page = log_in(browser, console)
    boxes = page.locator("#topology g.node")
    expect(boxes).to_have_count(3)
    expect(node_box(page, "node1", "primary")).to_have_count(1)
    expect(node_box(page, "node2", "standby")).to_have_count(1)
    expect(node_box(page, "node3", "standby")).to_have_count(1)
    streams = page.locator('#topology g.stream[data-kind="physical"][data-source="node1"]')
    expect(streams).to_have_count(2)
    expect(page.locator("#leader")).to_have_text("node1")  # the lab fails over automatically
    shot(page, "overview")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    for name, path in [("archive", "/archive"), ("events", "/events"), ("actions", "/actions")]:
        page.goto(f"{console.url}{path}")
        expect(page.locator("main h1")).to_be_visible()
        shot(page, name)
    page.context.close()


@pytest.mark.browser
def test_node_page_lag_chart_has_points(browser: Browser, console: Console) -> None:
    page = log_in(browser, console)
    page.goto(f"{console.url}/node/node2")
    expect(page.locator("#node-role")).to_have_attribute("data-role", "standby")
    chart = page.locator("#lag-chart")
    expect(chart).to_have_attribute("data-loaded", "yes")
    assert int(chart.get_attribute("data-points") or 0) > 0
    expect(chart.locator("canvas")).to_have_count(1)
    chart.evaluate("el => { el.dataset.kept = 'yes'; }")
    page.wait_for_timeout(3500)  # the page's live part refreshed meanwhile (every 3 s)
    expect(page.locator("#lag-chart canvas")).to_have_count(1)
    assert page.locator("#lag-chart").get_attribute("data-kept") == "yes", "the chart was kept"
    shot(page, "node")
    page.context.close()


@pytest.mark.browser
def test_phone_width_has_no_sideways_scrolling(browser: Browser, console: Console) -> None:
    page = log_in(browser, console, width=390)
    for path in ("/", "/node/node2", "/logical", "/actions"):
        page.goto(f"{console.url}{path}")
        expect(page.locator("main h1").first).to_be_attached()
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, f"{path} is {overflow}px wider than a phone"
    page.goto(f"{console.url}/")
    shot(page, "overview-phone")
    page.context.close()


@pytest.mark.browser
def test_switchover_from_the_ui_changes_the_picture_without_reload(
    browser: Browser, console: Console
) -> None:
    watcher = log_in(browser, console)
    watcher.evaluate("window.__notReloaded = true")
    actor = watcher.context.new_page()
    actor.set_default_timeout(30_000)
    actor.goto(f"{console.url}/actions?kind=switchover&node=node2")
    actor.click("#preview-button")
    card = actor.locator("#preview-card")
    expect(card).to_have_attribute("data-allowed", "yes")
    expect(card.locator("ol.plan li").first).to_be_visible()
    shot(actor, "actions-preview")
    actor.click("#confirm-button")
    expect(actor.locator(".job")).to_have_attribute("data-outcome", "succeeded", timeout=60_000)
    shot(actor, "actions-done")
    expect(node_box(watcher, "node2", "primary")).to_have_count(1, timeout=20_000)
    expect(node_box(watcher, "node1", "standby")).to_have_count(1)
    expect(watcher.locator("#leader")).to_have_text("node2")  # the lease was handed over
    assert watcher.evaluate("window.__notReloaded") is True
    shot(watcher, "overview-after-switchover")
    watcher.goto(f"{console.url}/events?operation=switchover")
    row = watcher.locator('#events-table tr[data-operation="switchover"]').first
    expect(row).to_have_attribute("data-outcome", "succeeded")
    expect(row).to_contain_text("alice@console")
    watcher.context.close()


def run_action(page: Page, console: Console, kind: str, node: str) -> None:
    page.goto(f"{console.url}/actions?kind={kind}&node={node}")
    page.click("#preview-button")
    expect(page.locator("#preview-card")).to_have_attribute("data-allowed", "yes")
    page.click("#confirm-button")
    expect(page.locator(".job")).to_have_attribute("data-outcome", "succeeded", timeout=30_000)


@pytest.mark.browser
def test_pause_and_resume_replay_from_the_ui(browser: Browser, console: Console) -> None:
    page = log_in(browser, console)
    run_action(page, console, "pause-replay", "node3")
    page.goto(f"{console.url}/node/node3")
    expect(page.locator("dd .badge.warn")).to_have_text("replay paused")
    shot(page, "node-replay-paused")
    run_action(page, console, "resume-replay", "node3")
    page.goto(f"{console.url}/node/node3")
    expect(page.locator("dd .badge.warn")).to_have_count(0)
    # a primary has no replay: the preview refuses, with the reason, and offers no confirm
    page.goto(f"{console.url}/actions?kind=pause-replay&node=node2")
    page.click("#preview-button")
    card = page.locator("#preview-card")
    expect(card).to_have_attribute("data-allowed", "no")
    expect(card).to_contain_text("not a running standby")
    expect(page.locator("#confirm-button")).to_have_count(0)
    page.context.close()


@pytest.mark.browser
def test_restore_point_from_the_archive_page(browser: Browser, console: Console) -> None:
    page = log_in(browser, console)
    page.goto(f"{console.url}/archive")
    page.fill("#rp-name", "before-console-test")
    page.click("#rp-button")
    expect(page.locator("#restore-point-result .result.ok")).to_contain_text("before-console-test")
    page.reload()
    expect(page.locator("#restore-points")).to_contain_text("before-console-test")
    chart = page.locator('.lag-chart[data-kind="archive"]')
    expect(chart).to_have_attribute("data-loaded", "yes")
    assert int(chart.get_attribute("data-points") or 0) > 0, "the archive's trailing sampled"
    shot(page, "archive")
    page.context.close()


@pytest.mark.browser
def test_publication_and_subscription_through_the_forms(
    browser: Browser, pair: Lab, pair_console: Console
) -> None:
    ddl = "CREATE TABLE orders (id int PRIMARY KEY, region text NOT NULL, amount numeric)"
    for node in ("node1", "node2"):
        query(pair.config, node, ddl)
    query(pair.config, "node1", "INSERT INTO orders VALUES (1, 'EU', 10), (2, 'US', 20)")
    page = log_in(browser, pair_console)
    page.goto(f"{pair_console.url}/logical")
    page.select_option("#pub-node", "node1")
    page.check('#pub-tables input[value="orders"]')
    page.fill("#pub-name", "eu_orders")
    page.fill("#pub-filters", "orders:region = 'EU'")
    page.click("#publication-form button[type=submit]")
    expect(page.locator("#publication-result .result.ok")).to_be_visible(timeout=30_000)
    tree_node1 = page.locator('#logical-tree li[data-node="node1"]')
    expect(tree_node1.locator('li[data-publication="eu_orders"]')).to_contain_text("region = 'EU'")
    page.select_option("#sub-node", "node2")
    page.fill("#sub-name", "eu_orders_sub")
    page.select_option("#sub-source", "node1")
    page.fill("#sub-pubs", "eu_orders")
    page.click("#subscription-form button[type=submit]")
    expect(page.locator("#subscription-result .result.ok")).to_be_visible(timeout=60_000)
    sub = page.locator('#logical-tree li[data-node="node2"] li[data-subscription="eu_orders_sub"]')
    expect(sub).to_be_visible()
    wait_until(
        lambda: query(pair.config, "node2", "SELECT count(*) FROM orders")[0][0] == 1,
        timeout=30,
        what="the EU row on node2",
    )
    expect(sub.locator(".tag.state-r")).to_have_count(1, timeout=20_000)
    page.goto(f"{pair_console.url}/")
    expect(page.locator('#topology g.stream[data-kind="logical"]')).to_have_count(1)
    shot(page, "overview-logical")
    page.goto(f"{pair_console.url}/logical")
    expect(sub).to_be_visible()
    shot(page, "logical")
    # the form applies the CLI's rules server-side: a filter for a table not published
    page.select_option("#pub-node", "node1")
    page.fill("#pub-name", "bad_pub")
    page.fill("#pub-more", "orders")
    page.fill("#pub-filters", "customers:true")
    page.click("#publication-form button[type=submit]")
    expect(page.locator("#publication-result .result.bad")).to_contain_text("--row-filter names")
    page.context.close()


def test_https_when_given_a_certificate(lab: Lab, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    found = start_console(lab, (cert, key))
    try:
        context = ssl._create_unverified_context()  # noqa: S323 (a self-signed test cert)
        with urllib.request.urlopen(f"{found.url}/login", context=context, timeout=5) as page:  # noqa: S310
            cookie = page.headers["set-cookie"]
            assert page.status == 200
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
        plain = found.url.replace("https://", "http://")
        with pytest.raises(OSError, match=r"Remote end closed|reset|EOF|BadStatus|closed"):
            urllib.request.urlopen(f"{plain}/login", timeout=5).read()  # noqa: S310
    finally:
        stop_console(found)


def test_cluster_cleanup_trims_the_history(lab: Lab) -> None:
    client = HistoryClient(lab.config.node("node1"))
    assert client.history().samples, "there are samples to trim"
    done = pgherd("cluster", "cleanup", "--keep-days", "0", "--json", config=lab.config_path)
    results = {r["node"]: r for r in json.loads(done.stdout)}
    assert set(results) == {"node1", "node2", "node3"}
    assert results["node1"]["removed"] > 0
    assert all(r["error"] is None for r in results.values())
    left = client.history().samples
    assert len(left) <= 3, "at most the samples of one round taken since"
    kept = pgherd("cluster", "cleanup", "--keep-days", "7", config=lab.config_path)
    assert "removed 0 samples" in kept.stdout
