"""Word tokenizers shared by the nltk-based metrics (U20–U22): `str.split()` (default) or nltk's word tokenizer."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

Tokenizer = Callable[[str], list[str]]


@lru_cache(maxsize=1)
def _nltk_word() -> Tokenizer:
    """`NLTKWordTokenizer().tokenize`: equals `word_tokenize` on one sentence and needs no `punkt` (§7.4 C)."""
    from nltk.tokenize import NLTKWordTokenizer

    return NLTKWordTokenizer().tokenize


def word_tokenizer(name: str) -> Tokenizer:
    return str.split if name == "split" else _nltk_word()
