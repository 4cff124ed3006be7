"""The parity suite's eval set: ``--vlparity-eval-set`` when given (nightly: ``easy-vqa``, all 9,673 test questions),
else a fixed easy-VQA subset sized to the suite's time budget (measured in tests/parity/test_task_accuracy.py)."""

from __future__ import annotations

import pytest

from vlparity.eval_sets import EvalSet
from vlparity.pytest_plugin import eval_set_spec, load_eval_set_or_fail

DEFAULT_EVAL_SET = "easy-vqa[:40]"


@pytest.fixture(scope="session")
def accuracy_eval_set(request: pytest.FixtureRequest) -> EvalSet:
    return load_eval_set_or_fail(eval_set_spec(request.config) or DEFAULT_EVAL_SET)
