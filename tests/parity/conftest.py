"""The parity suite's eval set: ``--vlparity-eval-set`` when given (nightly: ``easy-vqa``, all 9,673 test questions),
else a fixed easy-VQA subset sized to the suite's time budget (measured in tests/parity/test_task_accuracy.py)."""

from __future__ import annotations

import pytest

from vlparity.eval_sets import EvalSet
from vlparity.pytest_plugin import eval_set_spec, load_eval_set_or_fail

# 200: one answer is 0.5 % against max_accuracy_drop 0.03. At 40 (one answer 2.5 %) the AWQ path's genuine drop
# (Qwen2.5-VL, measured on easy-vqa[:400]: 1.0 %, 4 lost and 0 gained) failed on two answers of the first 40.
DEFAULT_EVAL_SET = "easy-vqa[:200]"


@pytest.fixture(scope="session")
def accuracy_eval_set(request: pytest.FixtureRequest) -> EvalSet:
    return load_eval_set_or_fail(eval_set_spec(request.config) or DEFAULT_EVAL_SET)
