"""METEOR with real WordNet 3.0 obtained offline from Debian's packages (§7.2, U22)."""

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
def test_debian_layout_is_wordnet_30_with_117659_synsets(tmp_path, monkeypatch):
    import nltk

    monkeypatch.setattr(nltk.data, "path", list(nltk.data.path))  # the reader adds its root; keep it to this test
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


@pytest.fixture(scope="module")
def nltk_reader():
    """nltk's own reader over the same corpus the engine uses (seconds to build: once per module)."""
    meteor = Options().text_similarity.meteor
    reader, _ = load_wordnet(meteor.wordnet_dir, cache_dir=Path(meteor.wordnet_cache))
    return reader


def _vocabulary(reader, rng) -> list[str]:
    """Real lemmas, their inflections (which morphy undoes), irregular forms from the exception lists,
    capitalised and punctuated variants, and words WordNet does not know."""
    lemmas = [w for w in reader.all_lemma_names() if "_" not in w]
    words = rng.sample(lemmas, 3000)
    words += [w + suffix for w in rng.sample(lemmas, 1500) for suffix in rng.sample(["s", "es", "ed", "ing", "er", "est", "ies", "men"], 2)]
    for pos in ("n", "v", "a", "r"):
        forms = sorted(reader._exception_map[pos])
        words += rng.sample(forms, min(200, len(forms)))
    words += [w.capitalize() for w in rng.sample(words, 300)] + [w + "," for w in rng.sample(words, 200)]
    return words + ["xyzzy", "qwertz", "", "-", "Paris", "U.S.", "can't"]


@needs_debian
def test_meteor_index_gives_nltks_lemma_names_for_every_word(nltk_reader):
    """The compact index answers `synsets(word)` with exactly the lemma names nltk's reader gives, morphy included."""
    import random

    from graders.resources.wordnet import load_meteor_wordnet

    meteor = Options().text_similarity.meteor
    index, _ = load_meteor_wordnet(meteor.wordnet_dir, cache_dir=Path(meteor.wordnet_cache))
    for word in _vocabulary(nltk_reader, random.Random(7)):
        theirs = {lemma.name() for synset in nltk_reader.synsets(word) for lemma in synset.lemmas()}
        ours = {lemma.name() for synset in index.synsets(word) for lemma in synset.lemmas()}
        assert ours == theirs, word


@needs_debian
def test_meteor_scores_are_bit_identical_to_nltks_meteor_score(nltk_reader):
    """Thousands of pairs built to exercise exact, stem and synonym matches: the engine's METEOR (compact index)
    equals nltk's `meteor_score` over nltk's full reader to the last bit."""
    import random
    import warnings

    from nltk.translate.meteor_score import meteor_score

    rng = random.Random(11)
    words = _vocabulary(nltk_reader, rng)
    synonyms = [w for w in words if nltk_reader.synsets(w)][:2000]
    pairs = []
    for _ in range(3000):
        ref = rng.sample(words, rng.randint(1, 12))
        hyp = [rng.choice([w, rng.choice(synonyms), w + "s", w.upper()]) for w in ref] + rng.sample(words, rng.randint(0, 3))
        rng.shuffle(hyp)
        pairs.append((" ".join(hyp), " ".join(ref)))
    compiled = graders.compile(METEOR)
    ours = [r.reward for r in compiled.run_many([{"model_sample": h, "item": {"r": r}} for h, r in pairs])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = [float(meteor_score([r.split()], h.split(), wordnet=nltk_reader)) for h, r in pairs]
    assert ours == theirs
    assert sum(0 < s < 1 for s in ours) > 2000  # the pairs are not trivially all-or-nothing


@needs_debian
def test_first_meteor_grade_in_a_new_process_reads_the_index_not_nltks_reader():
    """METEOR used to cost seconds in each new process for nltk to parse WordNet; with the index built once, the
    first grade costs little beyond importing nltk itself (target: under 0.5 s on a quiet machine)."""
    import subprocess
    import sys

    graders.compile(METEOR).run("warm", {"r": "the index"})  # builds the index once if this machine has none
    script = (
        "import time; t = time.perf_counter(); import nltk.translate.meteor_score; t_nltk = time.perf_counter() - t\n"
        "import nltk.corpus.reader.wordnet as w; built = []\n"
        "real = w.WordNetCorpusReader.__init__\n"
        "w.WordNetCorpusReader.__init__ = lambda self, *a, **k: (built.append(1), real(self, *a, **k))[1]\n"
        "import graders\n"
        "g = graders.compile({'type': 'text_similarity', 'input': '{{ sample.output_text }}', 'reference': '{{ item.r }}', 'evaluation_metric': 'meteor'})\n"
        "r = g.run('the cats were sitting', {'r': 'a cat sat'}); total = time.perf_counter() - t\n"
        "print(len(built), r.reward, t_nltk, total)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    built, reward, t_nltk, total = out.stdout.split()
    assert built == "0" and 0 < float(reward) < 1 and out.stderr == ""
    assert float(total) - float(t_nltk) < 0.5, (t_nltk, total)


@needs_debian
def test_the_one_time_copy_of_debians_wordnet_is_said_on_stderr(tmp_path, capsys, monkeypatch):
    import nltk

    from graders.resources.wordnet import _locate

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "nowhere")])
    corpus, source = _locate(None, DEBIAN_WORDNET, tmp_path / "cache", False)
    assert "copying WordNet 3.0 from /usr/share/wordnet" in capsys.readouterr().err and source.startswith("Debian")
    assert _locate(None, DEBIAN_WORDNET, tmp_path / "cache", False)[0] == corpus
    assert capsys.readouterr().err == ""  # once
