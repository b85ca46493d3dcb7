"""`label_model` (§10): a grader model picks one of `labels`; 1.0 if it is in `passing_labels`, else 0.0."""

from __future__ import annotations

from typing import Any

from ...options import Options
from ...schema import LabelModelGrader
from ...errors import ParseProblem
from .grading import ModelGraderEvaluator
from .prompt import label_model_params
from .schemas import label_schema


class LabelModelEvaluator(ModelGraderEvaluator):
    """§10: a label outside `labels` (a non-strict server) is a `model_grader_parse_error`, reward 0.0."""

    type = "label_model"
    config: LabelModelGrader

    def __init__(self, config: LabelModelGrader, options: Options) -> None:
        self._labels = frozenset(config.labels)
        self._passing = frozenset(config.passing_labels)
        super().__init__(config, options)

    def sampling_params(self) -> dict[str, Any]:
        return label_model_params(self.config.sampling_params)

    def response_schema(self) -> dict[str, Any]:
        return label_schema(self.config.labels, self.options.label_model)

    def score_result(self, result: Any) -> tuple[float, dict[str, Any]]:
        if not isinstance(result, str) or result not in self._labels:
            raise ParseProblem(f"'result' {result!r} is not one of the labels {sorted(self._labels)}")
        return (1.0 if result in self._passing else 0.0), {"label": result}
