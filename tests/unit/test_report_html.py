"""render_html: one self-contained page (no URL at all) whose plots are inline SVG, with every text escaped."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from tests.unit.report_samples import HOSTILE, build_report, hesitating_awq_report, with_references
from vlparity.report.html import render_html
from vlparity.report.model import ParityReport
from vlparity.report.svg import HEAT_MAX_OPACITY, NAN_COLOUR, heat_opacity, heatmap_svg, merge_histograms


class _Elements(HTMLParser):
    """Every start tag with its attributes, and the text of <script> elements."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Elements()
    parser.feed(html)
    return parser.tags


def _plots(html: str) -> list[str]:
    return [attrs["data-kind"] or "" for tag, attrs in _elements(html) if tag == "svg" and "data-kind" in attrs]


@pytest.fixture(scope="module")
def page() -> str:
    return render_html(build_report())


def test_the_page_references_no_url(page: str) -> None:
    text = re.sub(r'"data:image/jpeg;base64,[A-Za-z0-9+/=]*"', '""', page)  # base64 may contain "//"
    assert not re.search(r"https?:|ftp:|//[a-z]", text, re.IGNORECASE)
    loaded = [(tag, attrs) for tag, attrs in _elements(page) if tag in ("link", "iframe", "img", "object", "embed")]
    assert loaded == []
    assert all(attrs.get("src") is None for _, attrs in _elements(page))


def test_images_are_embedded_as_data_uris(page: str) -> None:
    hrefs = [attrs.get("href") for tag, attrs in _elements(page) if tag == "image"]
    assert hrefs and all(href and href.startswith("data:image/jpeg;base64,") for href in hrefs)


def test_hostile_text_is_escaped_and_ours_is_the_only_script(page: str) -> None:
    assert "<script>alert" not in page and HOSTILE not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert [tag for tag, _ in _elements(page)].count("script") == 1


def test_plots_per_kind(page: str) -> None:
    kinds = _plots(page)
    # per candidate path: a histogram, a heat map, a timeline; per stage (load, generate): latency; RSS: memory
    assert {kind: kinds.count(kind) for kind in set(kinds)} == {
        "histogram": 2,
        "heatmap": 2,
        "legend": 1,
        "timeline": 2,
        "latency": 2,
        "memory": 1,
    }


def test_heat_map_draws_only_visible_tokens_and_nan_in_its_own_colour(page: str) -> None:
    heatmap = re.search(r'data-kind="heatmap" role="img" aria-label="onnx-int8[^>]*>.*?</svg>', page, re.S)
    assert heatmap is not None
    tokens = re.findall(r'<rect class="token"[^>]*>', heatmap.group(0))
    assert len(tokens) == 4  # cosines 1.0, 0.999, nan, 0.9, 1.0, 0.99: the two exact ones are left transparent
    assert sum(f'fill="{NAN_COLOUR}"' in rect for rect in tokens) == 1


def test_failing_paths_open_and_passing_ones_close_unless_worst(page: str) -> None:
    blocks = {
        (attrs["data-path"], "open" in attrs)
        for tag, attrs in _elements(page)
        if tag == "details" and "data-path" in attrs
    }
    assert ("onnx-int8", True) in blocks and ("split", False) in blocks


def test_timeline_marks_the_diverged_step_and_the_first_divergence(page: str) -> None:
    timeline = re.search(r'data-kind="timeline" role="img" aria-label="onnx-int8[^>]*>.*?</svg>', page, re.S)
    assert timeline is not None
    assert timeline.group(0).count('class="diverged"') == 2  # step 0 differs, step 2 is missing on the candidate
    assert 'class="first-divergence" x1="86"' in timeline.group(0)
    assert "step 1: KL NaN" in timeline.group(0)


def test_a_report_without_checks_renders_without_plots_of_checks() -> None:
    report = ParityReport("m", "qwen2_5_vl", "cpu", "float32", "original", {})
    page = render_html(report)
    assert "nothing ran" in page and _plots(page) == []


def test_heat_map_without_a_usable_grid_or_image_still_draws_every_token() -> None:
    svg = heatmap_svg([0.5] * 5, grid=[2, 2], image="/no/such/image.png", label="x")
    assert svg.count('class="token"') == 5 and "<image" not in svg


def test_missing_image_file_leaves_a_plain_background() -> None:
    svg = heatmap_svg([0.5] * 4, grid=[2, 2], image="/no/such/image.png", label="x")
    assert "<image" not in svg and 'fill="#eee"' in svg


def test_heat_opacity_is_zero_for_identical_tokens_and_grows_with_the_gap() -> None:
    opacities = [heat_opacity(1 - gap) for gap in (0.0, 1e-9, 1e-6, 1e-3, 1.0)]
    assert opacities[0] == opacities[1] == 0.0
    assert opacities[1] < opacities[2] < opacities[3] < opacities[4] == HEAT_MAX_OPACITY


def test_histograms_with_the_same_edges_add_up() -> None:
    a = {"log10_edges": [0, 1, 2], "counts": [1, 2], "zero": 3, "below": 0, "above": 1, "nonfinite": 0}
    b = {"log10_edges": [0, 1, 2], "counts": [5, 0], "zero": 0, "below": 2, "above": 0, "nonfinite": 4}
    merged = merge_histograms([a, None, b])
    assert merged == {"log10_edges": [0, 1, 2], "counts": [6, 2], "zero": 3, "below": 2, "above": 1, "nonfinite": 4}


def test_cuda_peaks_get_their_own_memory_chart() -> None:
    report = build_report()
    report.paths["split"].memory["generate"]["cuda_peak_bytes"] = 3 * 2**30
    page = render_html(report)
    assert _plots(page).count("memory") == 2 and "peak CUDA memory" in page and "3.0 GiB" in page


def test_the_summary_shows_each_judged_figure_with_its_limit() -> None:
    page = render_html(hesitating_awq_report())
    assert "<th>KL/limit</th>" in page
    assert ">0.0008/0.01 (settled steps, p ≥ 0.9, 1 ambiguous; all steps 0.0405)</td>" in page


def test_a_degenerate_reference_gets_a_warnings_section() -> None:
    page = render_html(with_references(build_report(), ([8, 9, 2], "b c"), ([8, 9, 2], "b c")))
    assert '<h2 id="warnings">Warnings (1)</h2>' in page and "every sample (2) gets the same answer" in page
