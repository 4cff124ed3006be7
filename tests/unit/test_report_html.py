"""render_html: one self-contained page (no URL at all) whose plots are inline SVG, with every text escaped."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from tests.unit.report_samples import HOSTILE, build_report, hesitating_awq_report, with_references
from vlparity.parity.tolerances import Tolerance, load_tolerances
from vlparity.provenance import VERDICT_LIBRARIES, verdict_library_versions
from vlparity.report.html import key_values, render_html
from vlparity.report.model import ParityReport
from vlparity.report.svg import (
    HEAT_BACKGROUND,
    HEAT_RAMP,
    NAN_COLOUR,
    PANEL_GAP,
    heat_colour,
    heat_position,
    heatmap_svg,
    merge_histograms,
)


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


def _heatmap(page: str, path: str) -> str:
    heatmap = re.search(rf'data-kind="heatmap" role="img" aria-label="{path}[^>]*>.*?</svg>', page, re.S)
    assert heatmap is not None
    return heatmap.group(0)


def test_heat_map_draws_only_differing_tokens_darker_for_larger_gaps_and_nan_in_its_own_colour(page: str) -> None:
    fills = re.findall(r'<rect class="token"[^>]*fill="(#[0-9a-f]{6})"', _heatmap(page, "onnx-int8"))
    # cosines 1.0, 0.999, nan, 0.9, 1.0, 0.99: the two exact ones are left on the grey background
    assert fills == [heat_colour(heat_position(0.999)), NAN_COLOUR, heat_colour(heat_position(0.9)), fills[3]]
    assert fills[3] == heat_colour(heat_position(0.99))
    lightness = [sum(int(fill[i : i + 2], 16) for i in (1, 3, 5)) for fill in (fills[0], fills[3], fills[2])]
    assert lightness[0] > lightness[1] > lightness[2]  # gaps 1e-3 < 1e-2 < 1e-1


def test_heat_map_and_image_are_side_by_side_panels_of_one_size(page: str) -> None:
    svg = _heatmap(page, "onnx-int8")
    image = re.search(r'<g class="image-panel"><image [^>]*x="0" y="0" width="([\d.]+)" height="([\d.]+)"', svg)
    heat = re.search(r'<g class="heat-panel" transform="translate\(([\d.]+) 0\)"><rect [^>]*width="([\d.]+)" '
                     r'height="([\d.]+)" fill="' + HEAT_BACKGROUND, svg)  # fmt: skip
    assert image and heat
    width, height = map(float, image.groups())
    assert (float(heat.group(2)), float(heat.group(3))) == (width, height)  # grid 2×3 over the whole image
    assert float(heat.group(1)) == width + PANEL_GAP  # beside it, not over it
    tokens = re.findall(r'<rect class="token" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', svg)
    assert tokens and all(float(x) + float(w) <= width + 0.01 for x, w in tokens)  # inside the heat panel


def test_heat_colours_are_one_blue_hue_that_nan_purple_stands_out_from() -> None:
    ramp = [heat_colour(position / 20) for position in range(21)]
    assert ramp[0] == HEAT_RAMP[0] and ramp[-1] == HEAT_RAMP[-1]
    assert all(int(c[5:7], 16) >= int(c[3:5], 16) >= int(c[1:3], 16) for c in ramp)  # blue ≥ green ≥ red: one hue
    assert NAN_COLOUR not in ramp and HEAT_BACKGROUND not in ramp


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


def test_missing_image_file_leaves_a_placeholder_panel_beside_the_heat_map() -> None:
    svg = heatmap_svg([0.5] * 4, grid=[2, 2], image="/no/such/image.png", label="x")
    assert "<image" not in svg and 'class="image-panel"' in svg and "image unavailable" in svg


def test_heat_position_is_none_for_identical_tokens_and_grows_with_the_gap_on_a_fixed_log_scale() -> None:
    assert heat_position(1.0) is heat_position(1 - 1e-9) is None
    positions = [heat_position(1 - gap) for gap in (1e-6, 1e-3, 1.0, 2.0)]
    assert positions == pytest.approx([1 / 7, 4 / 7, 1.0, 1.0])


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
    assert ">0.0008/0.6 (settled steps, p ≥ 0.9, 1 ambiguous; all steps 0.0405)</td>" in page


def test_a_degenerate_reference_gets_a_warnings_section() -> None:
    page = render_html(with_references(build_report(), ([8, 9, 2], "b c"), ([8, 9, 2], "b c")))
    assert '<h2 id="warnings">Warnings (1)</h2>' in page and "every sample (2) gets the same answer" in page


def test_the_header_says_when_where_and_from_which_commit(page: str) -> None:
    line = re.search(r'<p class="provenance" id="provenance">([^<]*)</p>', page)
    assert line is not None
    assert line.group(1) == "run 2026-12-01T02:30:00Z on ci-runner-7, vlparity 0.1.0 at 0c4cfc1d0c4c (modified)"


def test_the_provenance_table_lists_the_machine_and_every_version(page: str) -> None:
    section = page[page.index('<h2 id="provenance-table">') :]
    for key, value in [
        ("platform", "Linux-6.1.0-x86_64-with-glibc2.36"),
        ("CPU", "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz"),
        ("vlparity commit", "0c4cfc1d0c4cfc1d0c4cfc1d0c4cfc1d0c4cfc1d (with uncommitted changes)"),
        ("onnxruntime", "1.32.0"),
        ("gptqmodel", "not installed"),
    ]:
        assert f"<tr><th>{key}</th><td>{value}</td></tr>" in section


def test_a_live_report_names_every_library_that_shapes_a_verdict() -> None:
    report = ParityReport("m", "qwen2_5_vl", "cpu", "float32", "original", verdict_library_versions())
    section = render_html(report)
    assert all(f"<tr><th>{name}</th>" in section for name in ["torch", "transformers", *VERDICT_LIBRARIES])


def test_each_candidate_tolerance_profile_is_listed_key_by_key(page: str) -> None:
    table = re.search(r'<table class="tolerances">(.*?)</table>', page, re.S)
    assert table is not None
    assert re.findall(r"<th>([^<]*)</th>", table.group(1)) == ["key", "split", "onnx-int8"]
    keys = re.findall(r"<tr><td><code>([^<]*)</code></td>", table.group(1))
    assert sorted(keys) == sorted(Tolerance.__dataclass_fields__) and keys[0] == "version"
    int8 = load_tolerances(model_type="qwen2_5_vl")["onnx-int8"]
    row = re.search(r"<code>vision_min_cosine</code></td>(.*?)</tr>", table.group(1))
    assert row is not None and row.group(1).endswith(f'<td class="num">{int8.vision_min_cosine:.10g}</td>')
    assert re.search(r'<code>vision_atol</code></td><td class="num">[^<]*</td><td class="num">∞</td>', table.group(1))


def test_details_are_nested_key_value_tables_not_a_json_dump(page: str) -> None:
    assert "<pre>" not in page and "&quot;nodes_per_provider&quot;" not in page
    assert (
        '<tr><th>nodes_per_provider</th><td><table class="kv"><tr><th>CPUExecutionProvider</th><td>412</td></tr>'
        in page
    )
    assert "<tr><th>requested</th><td><ul><li>CPUExecutionProvider</li></ul></td></tr>" in page


def test_details_show_none_empty_and_boolean_values_in_words() -> None:
    assert key_values({"audit": None, "warns": [], "extra": {}, "fallback_allowed": False}) == (
        '<table class="kv"><tr><th>audit</th><td>-</td></tr><tr><th>warns</th><td>none</td></tr>'
        "<tr><th>extra</th><td>none</td></tr><tr><th>fallback_allowed</th><td>no</td></tr></table>"
    )
