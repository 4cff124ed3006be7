"""The README's example test file runs as shown, from a directory outside this repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    """The README's Python block that starts with ``# test_deployment_parity.py``."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    examples = [block for block in blocks if block.startswith("# test_deployment_parity.py")]
    assert len(examples) == 1, "README.md must hold exactly one example test file"
    return examples[0]


@pytest.mark.slow
def test_the_readme_example_test_file_passes_outside_the_repo(
    pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory
) -> None:
    pytester.makepyfile(test_deployment_parity=readme_example())
    assert README.parent not in pytester.path.parents
    cache = tmp_path_factory.mktemp("cache")
    result = pytester.runpytest_subprocess(
        "--vlparity-paths", "original,split", "--vlparity-max-new-tokens", "4", f"--vlparity-cache-dir={cache}"
    )
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*vlparity parity summary*", "overall: PASS"])
