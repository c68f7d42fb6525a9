"""The page of ``molfm serve`` in a real browser.

The real server (``create_app`` with the shipped ``transformer-m-small-qm9`` and
``gp-molformer-small-moses``; not the naming model, slow on a CPU) runs in a thread on a free
port of 127.0.0.1; Playwright drives Debian's ``chromium-headless-shell``
(``apt-get install -y chromium-headless-shell``; ``.ci/run`` installs it, so CI runs these
tests). Without a chromium binary the module is skipped, saying so. Every request the page makes
must go to the server: one to anywhere else fails the test.

``MOLFM_SCREENSHOT=docs/serve.png python -m pytest tests/serve/test_browser.py`` writes the
README's screenshot (otherwise it goes to a temporary folder).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM_CANDIDATES = (
    "/usr/bin/chromium-headless-shell",
    "/usr/lib/chromium/chromium-headless-shell",
    "/usr/lib/chromium-headless-shell/chromium-headless-shell",
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
MODELS = ["transformer-m-small-qm9", "gp-molformer-small-moses"]
WAIT_MS = 15_000  # the longest any expectation waits: every wait is bounded


def _chromium() -> str | None:
    found = os.environ.get("MOLFM_CHROMIUM") or shutil.which("chromium-headless-shell")
    return found or next((p for p in CHROMIUM_CANDIDATES if Path(p).is_file()), None)


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium binary: install it with `apt-get install -y chromium-headless-shell` "
    "(.ci/run does)",
)

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The real app with two shipped models, served by uvicorn on a free port; its base URL."""
    import httpx
    import uvicorn

    from molfm.serve.app import create_app
    from molfm.serve.config import ServeConfig

    app = create_app(ServeConfig(models=MODELS, log_level="warning"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # bound before the thread starts: no race for the port
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120  # loading both models takes seconds on a CPU
    while True:
        try:
            if httpx.get(f"{url}/v1/health/ready", timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("molfm serve did not become ready")
        time.sleep(0.2)
    yield url
    srv.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server) -> Iterator[Page]:
    """A fresh page of the server's `/`, editor loaded; fails on a script error, a request
    leaving the server or a page file the server does not have."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"script error: {e}"))

    def only_the_server(route):
        if route.request.url.startswith(server):
            route.continue_()
        else:
            problems.append(f"request outside the server: {route.request.url}")
            route.abort()

    def page_files_exist(response):
        if response.status >= 400 and "/v1/" not in response.url:  # API errors are tested
            problems.append(f"{response.status} {response.url}")

    page.route("**/*", only_the_server)
    page.on("response", page_files_exist)
    page.goto(server + "/")
    expect(page.locator("#status")).to_contain_text("transformer-m-small-qm9")
    page.wait_for_function("window.jsmeApplet !== undefined", timeout=WAIT_MS)
    yield page
    context.close()
    assert not problems, problems


def card(page: Page, smiles: str):
    return page.locator(f'#results .card[data-smiles="{smiles}"]')


def analyze(page: Page, *smiles: str) -> None:
    page.fill("#smiles-input", "\n".join(smiles))
    page.click("#analyze")


def test_pasted_smiles_show_depictions_and_the_servers_predictions(page: Page, server: str):
    analyze(page, "CCO", "CC(C)Cc1ccc(cc1)C(C)C(=O)O")
    ethanol = card(page, "CCO")
    expect(ethanol.locator(".depiction img")).to_be_visible()
    assert ethanol.locator(".depiction img").get_attribute("src").startswith("data:image/svg")
    expect(ethanol.locator("table.props tr")).to_have_count(3)
    expect(ethanol.locator(".badge.in-domain")).to_be_visible()
    # the numbers are the server's (three decimals), with their units
    answer = page.request.post(
        f"{server}/v1/predict", data={"model": MODELS[0], "smiles": ["CCO"]}
    ).json()["results"][0]
    for target, value in answer["predictions"].items():
        row = ethanol.locator("tr", has=page.locator(f'th:text-is("{target}")'))
        assert float(row.locator("td.value").inner_text()) == pytest.approx(value, abs=6e-4)
        expect(row.locator("td.unit")).to_have_text(answer["units"][target])
    # ibuprofen has 15 heavy atoms: outside QM9, flagged
    expect(card(page, "CC(C)Cc1ccc(cc1)C(C)C(=O)O").locator(".badge.ood")).to_contain_text(
        "out of domain"
    )


def test_benzene_drawn_in_the_editor_is_predicted(page: Page):
    # Drawn with the mouse: JSME's benzene tool (9th button of its second toolbar row, 24 px
    # buttons), then a click on the canvas.
    svgs = page.locator("#jsme svg")
    boxes = [svgs.nth(i).bounding_box() for i in range(svgs.count())]
    toolbar = min((b for b in boxes if b["width"] > 4 * b["height"]), key=lambda b: b["y"])
    canvas = max(boxes, key=lambda b: b["width"] * b["height"])
    for x, y in [
        (toolbar["x"] + 8 * 24 + 12, toolbar["y"] + 24 + 12),
        (canvas["x"] + canvas["width"] / 2, canvas["y"] + canvas["height"] / 2),
    ]:
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.up()
    page.wait_for_function("jsmeApplet.smiles() === 'c1ccccc1'", timeout=WAIT_MS)
    page.click("#analyze-drawn")
    benzene = card(page, "c1ccccc1")
    expect(benzene.locator(".depiction img")).to_be_visible()
    expect(benzene.locator("table.props tr")).to_have_count(3)
    expect(benzene.locator("td.unit").first).to_have_text("eV")


def test_a_bad_smiles_shows_its_error_in_place_and_the_page_stays_usable(page: Page):
    analyze(page, "CCO", "C1CC(", "O=C1CCC1")
    bad = card(page, "C1CC(")
    expect(bad.locator(".error")).to_be_visible()
    expect(bad.locator(".error")).to_contain_text("invalid_smiles")
    expect(bad.locator("table.props")).to_have_count(0)
    expect(page.locator("#alert")).to_be_hidden()  # per-molecule, not a page error
    for good in ("CCO", "O=C1CCC1"):  # its neighbours in the same request are answered
        expect(card(page, good).locator("table.props tr")).to_have_count(3)
    analyze(page, "c1ccncc1")  # and the page still works
    expect(card(page, "c1ccncc1").locator("table.props tr")).to_have_count(3)


def test_analogs_of_a_drawn_scaffold_are_a_grid_and_a_csv(page: Page, tmp_path: Path):
    # an R group is how one draws an attachment point in JSME (its R button)
    page.evaluate("jsmeApplet.readGenericMolecularInput('c1ccccc1[R1]')")
    page.wait_for_function("jsmeApplet.smiles() === '[R1]c1ccccc1'", timeout=WAIT_MS)
    page.click("#scaffold-from-editor")
    expect(page.locator("#scaffold")).to_have_value("[*]c1ccccc1")
    page.fill("#num-molecules", "12")
    page.click("#decorate")
    expect(page.locator("#generate-summary")).to_contain_text("valid", timeout=30_000)
    expect(page.locator("#generate-summary")).to_contain_text("unique")
    expect(page.locator("#generated .cell")).to_have_count(12)
    expect(page.locator("#generated .cell img").first).to_be_visible()
    with page.expect_download() as download:
        page.click("#generate-download")
    rows = Path(download.value.path()).read_text().splitlines()
    assert rows[0].startswith("smiles,valid")
    assert len(rows) == 13


def test_screenshot_of_a_realistic_page(page: Page, tmp_path: Path):
    analyze(page, "CCO", "O=C1CCC1", "c1ccncc1", "CC(C)Cc1ccc(cc1)C(C)C(=O)O", "C1CC(")
    expect(page.locator("#results table.props")).to_have_count(4)
    page.evaluate("jsmeApplet.readGenericMolecularInput('Oc1ccc(cc1)[R1]')")
    page.wait_for_function("jsmeApplet.smiles().includes('[R1]')", timeout=WAIT_MS)
    page.click("#scaffold-from-editor")
    page.fill("#num-molecules", "12")
    page.click("#decorate")
    expect(page.locator("#generated .cell")).to_have_count(12, timeout=30_000)
    for img in page.locator("#results img, #generated img").all():
        expect(img).to_be_visible()
    out = Path(os.environ.get("MOLFM_SCREENSHOT") or tmp_path / "serve.png")
    page.screenshot(path=str(out), full_page=True)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
