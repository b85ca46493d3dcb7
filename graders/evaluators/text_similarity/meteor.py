"""`meteor` (§7.2, U22): nltk `meteor_score([r], h)` with its defaults over `str.split()` tokens and WordNet 3.0.

nltk lower-cases and Porter-stems itself; alpha/beta/gamma are options. WordNet is read through the compact index
of `resources.wordnet` (built once from the real corpus; the same lemma names nltk's reader gives), so the first
grade in a new process does not pay for parsing WordNet. Without WordNet the grade fails with a clear
`other_error` and the install hint, never a wrong number.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from ...errors import MetricUnavailable
from ...options import Options
from ...resources.wordnet import DEBIAN_WORDNET, WordNetIndex, load_meteor_wordnet
from .base import Metric, library_version
from .tokenizers import word_tokenizer


class Meteor(Metric):
    names = ("meteor",)

    def __init__(self, metric: str, options: Options) -> None:
        super().__init__(metric, options)
        opts = options.text_similarity.meteor
        self._tokenize = word_tokenizer(opts.tokenizer)
        self._params = {"alpha": opts.alpha, "beta": opts.beta, "gamma": opts.gamma}
        debian = Path(opts.debian_wordnet_dir) if opts.debian_wordnet_dir else DEBIAN_WORDNET
        self._wordnet: WordNetIndex | None
        try:
            self._wordnet, source = load_meteor_wordnet(
                opts.wordnet_dir, debian, cache_dir=Path(opts.wordnet_cache), download=opts.wordnet_download
            )
            self._error: str | None = None
        except LookupError as exc:
            self._wordnet, source, self._error = None, None, str(exc)
        if self._wordnet is not None:
            from nltk.stem.porter import PorterStemmer
            from nltk.translate.meteor_score import meteor_score

            self._meteor = meteor_score
            self._stemmer = PorterStemmer()
            self.signature["wordnet"] = f"WordNet {self._wordnet.get_version()} ({source})"
        self.signature.update({"implementation": "nltk.meteor_score", "tokenizer": opts.tokenizer, **self._params, "library": library_version("nltk")})

    def score(self, hypothesis: str, reference: str) -> float:
        if self._error is not None:
            raise MetricUnavailable(self._error)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nltk warns that OMW (multilingual) is absent; English needs none
            return float(
                self._meteor([self._tokenize(reference)], self._tokenize(hypothesis), stemmer=self._stemmer, wordnet=self._wordnet, **self._params)
            )
