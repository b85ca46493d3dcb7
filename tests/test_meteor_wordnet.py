"""METEOR with real WordNet 3.0 obtained offline from Debian's packages (spec §7.2, U22)."""

from __future__ import annotations

from pathlib import Path

import pytest

import graders
from graders import Options
from graders.resources.wordnet import DEBIAN_WORDNET, LEXNAMES, layout_debian_wordnet, lexnames_text, load_wordnet

needs_debian = pytest.mark.skipif(not (DEBIAN_WORDNET / "data.noun").is_file(), reason="Debian wordnet-base is not installed")
METEOR = {"type": "text_similarity", "input": "{{ sample.output_text }}", "reference": "{{ item.r }}", "evaluation_metric": "meteor"}


def test_lexnames_table_has_45_entries():
    assert len(LEXNAMES) == 45
    lines = lexnames_text().splitlines()
    assert lines[0] == "00\tadj.all\t3" and lines[18] == "18\tnoun.person\t1" and lines[44] == "44\tadj.ppl\t3"


@needs_debian
def test_debian_layout_is_wordnet_30_with_117659_synsets(tmp_path):
    corpus = layout_debian_wordnet(DEBIAN_WORDNET, tmp_path)
    assert not any(p.is_symlink() for p in corpus.iterdir()), "files must be copied, not linked"
    reader, source = load_wordnet(str(corpus), cache_dir=tmp_path / "cache")
    assert reader.get_version() == "3.0"
    assert sum(1 for _ in reader.all_synsets()) == 117659
    assert "wordnet_dir" in source


@needs_debian
def test_meteor_uses_synonyms_from_wordnet():
    """'fast' is a WordNet synonym of 'quick': it scores like the exact single word (0.5, Table B P5), not 0."""
    synonym = graders.run(METEOR, "quick", {"r": "fast"})
    exact = graders.run(METEOR, "fast", {"r": "fast"})
    unrelated = graders.run(METEOR, "banana", {"r": "fast"})
    assert (synonym.reward, exact.reward, unrelated.reward) == (0.5, 0.5, 0.0)
    assert synonym.details["metric"]["wordnet"].startswith("WordNet 3.0")


def test_no_wordnet_gives_a_clear_error_not_a_number(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    opts = Options().with_values({"text_similarity.meteor.wordnet_dir": str(empty)})
    resp = graders.run(METEOR, "Paris", {"r": "Paris"}, options=opts)
    assert resp.reward == 0.0 and resp.errors["other_error"] is True
    assert "apt-get install wordnet-base wordnet-sense-index" in resp.details["error"]


def test_missing_debian_dir_gives_install_hint(tmp_path, monkeypatch):
    import nltk

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "nowhere")])
    with pytest.raises(LookupError, match="wordnet-base"):
        load_wordnet(None, Path(tmp_path / "no-debian"), cache_dir=tmp_path / "cache")
