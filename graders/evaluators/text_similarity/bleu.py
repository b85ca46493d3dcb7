"""`bleu` (U20) and `gleu` (U21), §7.2: nltk sentence scores over word tokens, case kept.

Default BLEU is nltk `sentence_bleu([r], h, smoothing_function=method1)` with `str.split()` tokens (nltk ships in
the hosted python image, sacrebleu does not); `implementation=sacrebleu` gives `sentence_bleu(h, [r]).score / 100`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
from nltk.translate.gleu_score import sentence_gleu

from ...options import Options
from .base import Metric, library_version
from .tokenizers import word_tokenizer


class Bleu(Metric):
    names = ("bleu",)

    def __init__(self, metric: str, options: Options) -> None:
        super().__init__(metric, options)
        opts = options.text_similarity.bleu
        self._sacrebleu = None
        if opts.implementation == "sacrebleu":
            from sacrebleu.metrics import BLEU

            self._sacrebleu = BLEU(effective_order=True)
            self.signature.update({"implementation": "sacrebleu.sentence_bleu / 100", "tokenize": "13a", "smooth": "exp", "effective_order": True, "library": library_version("sacrebleu")})
            return
        self._tokenize = word_tokenizer(opts.tokenizer)
        self._smoothing = None if opts.smoothing == "none" else getattr(SmoothingFunction(), opts.smoothing)
        self.signature.update({"implementation": "nltk.sentence_bleu", "tokenizer": opts.tokenizer, "smoothing": opts.smoothing, "weights": "0.25 x 4", "library": library_version("nltk")})

    def score(self, hypothesis: str, reference: str) -> float:
        return self.score_many([(hypothesis, reference)])[0]

    def score_many(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        if self._sacrebleu is not None:
            score = self._sacrebleu.sentence_score
            return [score(h, [r]).score / 100.0 for h, r in pairs]
        tokenize, smoothing = self._tokenize, self._smoothing
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nltk warns on zero n-gram overlap; a 0 score says the same thing
            return [float(sentence_bleu([tokenize(r)], tokenize(h), smoothing_function=smoothing)) for h, r in pairs]


class Gleu(Metric):
    names = ("gleu",)

    def __init__(self, metric: str, options: Options) -> None:
        super().__init__(metric, options)
        tokenizer = options.text_similarity.gleu.tokenizer
        self._tokenize = word_tokenizer(tokenizer)
        self.signature.update({"implementation": "nltk.sentence_gleu", "tokenizer": tokenizer, "min_len": 1, "max_len": 4, "library": library_version("nltk")})

    def score(self, hypothesis: str, reference: str) -> float:
        return float(sentence_gleu([self._tokenize(reference)], self._tokenize(hypothesis), min_len=1, max_len=4))
