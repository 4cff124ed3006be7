"""The HTML report in a real browser: headless Chromium loads it offline, runs its script without an error, lays out
every plot and paints a screenshot. Skips (with the install command) where Chromium is not installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from tests.unit.report_samples import build_report, with_tensors
from vlparity.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WINDOW = (1280, 2000)
# What Chromium itself fetches in the background (component updates, clock, sign-in state), whatever the page.
BROWSER_OWN = (
    "http://clients2.google.com/time/",
    "http://update.googleapis.com/service/update2/",
    "https://update.googleapis.com/service/update2/",
    "https://accounts.google.com/ListAccounts",
)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed: apt-get install chromium")


def chromium(html: Path, profile: Path, *action: str) -> subprocess.CompletedProcess[str]:
    """One headless Chromium run on ``html`` with the network unreachable and console messages on stderr."""
    command = [
        str(CHROMIUM),
        *("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic"),
        *("--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"),
        "--host-resolver-rules=MAP * ~NOTFOUND",  # nothing resolves: the page must not need the network
        *("--enable-logging=stderr", "--v=0", f"--user-data-dir={profile}"),
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        *action,
        html.as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


@dataclass(frozen=True)
class Rendered:
    source: str
    dom: str
    console: list[str]
    requested: set[str]
    screenshot: Path


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    directory = tmp_path_factory.mktemp("chromium")
    html = write_report(with_tensors(build_report(), broken=True), directory / "report.html")
    net_log = directory / "net-log.json"
    dumped = chromium(html, directory / "profile", "--dump-dom", f"--log-net-log={net_log}")
    requested = set(re.findall(r'"url":"([a-z]+://[^"]*)"', net_log.read_text()))
    screenshot = directory / "report.png"
    shot = chromium(html, directory / "profile", f"--screenshot={screenshot}")
    console = [line for line in (dumped.stderr + shot.stderr).splitlines() if ":CONSOLE" in line]
    return Rendered(html.read_text(), dumped.stdout, console, requested, screenshot)


def test_the_page_logs_nothing_to_the_console(rendered: Rendered) -> None:
    assert rendered.console == []  # an uncaught script error would be logged here


def test_the_page_requests_nothing_from_the_network(rendered: Rendered) -> None:
    page_requests = {url for url in rendered.requested if not url.startswith(BROWSER_OWN)}
    assert page_requests == set()


def test_the_script_ran_and_counted_every_plot(rendered: Rendered) -> None:
    plots = rendered.source.count('<svg class="plot"')
    assert plots == 10
    assert re.search(rf'<body data-plots-rendered="{plots}"', rendered.dom)


def test_every_plot_survives_in_the_browser_dom(rendered: Rendered) -> None:
    for kind in ("histogram", "heatmap", "legend", "timeline", "latency", "memory"):
        assert rendered.dom.count(f'data-kind="{kind}"') == rendered.source.count(f'data-kind="{kind}"') > 0


def test_the_per_tensor_tables_survive_in_the_browser_dom(rendered: Rendered) -> None:
    for table in ('<table class="tensor-blocks">', '<table class="worst-tensors">'):
        assert rendered.dom.count(table) == rendered.source.count(table) == 1
    cells = 'class="num failed" title="under its limit"'
    assert rendered.dom.count(cells) == rendered.source.count(cells) > 0


def test_the_screenshot_shows_a_styled_page(rendered: Rendered) -> None:
    with Image.open(rendered.screenshot) as image:
        assert image.size == WINDOW
        colours = {colour for _, colour in image.convert("RGB").getcolors(maxcolors=1 << 20) or []}
    assert len(colours) > 100  # text, plots and a photo thumbnail, not a blank or error page
    assert (0xCF, 0x22, 0x2E) in colours and (0x1A, 0x7F, 0x37) in colours  # the FAIL and PASS badges


def test_heat_map_panels_sit_beside_their_image_without_overlap(rendered: Rendered) -> None:
    laid_out = re.search(r'data-heatmaps-laid-out="(\d+)"', rendered.dom)
    assert laid_out is not None and int(laid_out.group(1)) >= 1  # the failing path's block is open
    assert 'data-heatmap-panels-overlapping="0"' in rendered.dom


def test_the_provenance_line_is_laid_out_in_the_header(rendered: Rendered) -> None:
    assert 'data-provenance-visible="true"' in rendered.dom
    assert "run 2026-12-01T02:30:00Z on ci-runner-7" in rendered.dom
