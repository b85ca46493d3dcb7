"""`score_model` (§9): a grader model returns `{steps, result}`; the reward is `result` clamped to `range`."""

from __future__ import annotations

from typing import Any

from ...options import Options
from ...schema import ScoreModelGrader
from .grading import ModelGraderEvaluator, finite_number
from .prompt import score_model_params
from .schemas import score_schema


class ScoreModelEvaluator(ModelGraderEvaluator):
    """§9.3: `reward = min(max(result, range[0]), range[1])`, default range [0, 1]; negative ranges allowed."""

    type = "score_model"
    config: ScoreModelGrader

    def __init__(self, config: ScoreModelGrader, options: Options) -> None:
        self._low, self._high = config.bounds
        super().__init__(config, options)

    def sampling_params(self) -> dict[str, Any]:
        return score_model_params(self.config.sampling_params)

    def response_schema(self) -> dict[str, Any]:
        return score_schema((self._low, self._high), self.options.score_model)

    def score_result(self, result: Any) -> tuple[float, dict[str, Any]]:
        value = finite_number(result)
        return min(max(value, self._low), self._high), {}
