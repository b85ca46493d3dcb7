"""WordNet 3.0 for METEOR, found offline (§7.2): never downloaded at run time unless asked.

Looked up in order: an nltk `wordnet` corpus on nltk's data path; Debian's `wordnet-base` + `wordnet-sense-index`
(`/usr/share/wordnet`), copied (not linked: recent nltk rejects links leading outside its data directory) into a
cache laid out as `corpora/wordnet` with the `lexnames` file Debian does not ship, generated from the lexnames(5WN)
table; then `nltk.download("wordnet")` only when `text_similarity.meteor.wordnet_download` is on.

METEOR asks WordNet one question, the lemma names of the synsets of a word (`synsets(word)`, through nltk's
morphy). nltk's reader answers it only after parsing every index file, which costs seconds in each new process,
so `load_meteor_wordnet` builds once, from that real reader, a compact index of exactly the data the question
reads (the lemma-to-synset map, the morphy exception lists and each synset's lemma names) and keeps it in the
graders cache; a later process loads it in a fraction of a second and answers with nltk's own morphy rules.
Both one-time steps, the copy and the build, say so on stderr.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import orjson

DEBIAN_WORDNET = Path("/usr/share/wordnet")
INSTALL_HINT = (
    "METEOR needs WordNet 3.0: install it with `apt-get install wordnet-base wordnet-sense-index` (Debian/Ubuntu), "
    "or `python -m nltk.downloader wordnet` where there is internet, or set text_similarity.meteor.wordnet_dir"
)
# lexnames(5WN): file number, lexicographer file name, syntactic category (1 noun, 2 verb, 3 adjective, 4 adverb).
LEXNAMES: tuple[tuple[str, int], ...] = (
    ("adj.all", 3), ("adj.pert", 3), ("adv.all", 4), ("noun.Tops", 1), ("noun.act", 1), ("noun.animal", 1),
    ("noun.artifact", 1), ("noun.attribute", 1), ("noun.body", 1), ("noun.cognition", 1), ("noun.communication", 1),
    ("noun.event", 1), ("noun.feeling", 1), ("noun.food", 1), ("noun.group", 1), ("noun.location", 1),
    ("noun.motive", 1), ("noun.object", 1), ("noun.person", 1), ("noun.phenomenon", 1), ("noun.plant", 1),
    ("noun.possession", 1), ("noun.process", 1), ("noun.quantity", 1), ("noun.relation", 1), ("noun.shape", 1),
    ("noun.state", 1), ("noun.substance", 1), ("noun.time", 1), ("verb.body", 2), ("verb.change", 2),
    ("verb.cognition", 2), ("verb.communication", 2), ("verb.competition", 2), ("verb.consumption", 2),
    ("verb.contact", 2), ("verb.creation", 2), ("verb.emotion", 2), ("verb.motion", 2), ("verb.perception", 2),
    ("verb.possession", 2), ("verb.social", 2), ("verb.stative", 2), ("verb.weather", 2), ("adj.ppl", 3),
)  # fmt: skip
_DEBIAN_FILES = (
    "adj.exc", "adv.exc", "noun.exc", "verb.exc", "cntlist.rev", "data.adj", "data.adv", "data.noun", "data.verb",
    "index.adj", "index.adv", "index.noun", "index.verb", "index.sense",
)  # fmt: skip

_lock = threading.Lock()
_readers: dict[str, Any] = {}


def lexnames_text() -> str:
    return "".join(f"{i:02d}\t{name}\t{pos}\n" for i, (name, pos) in enumerate(LEXNAMES))


def layout_debian_wordnet(source: Path, cache: Path) -> Path:
    """Copy Debian's WordNet 3.0 into `cache/corpora/wordnet` with a generated `lexnames`; returns the corpus dir."""
    missing = [f for f in _DEBIAN_FILES if not (source / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{source} lacks {', '.join(missing)} (wordnet-base and wordnet-sense-index)")
    target = cache / "corpora" / "wordnet"
    if (target / "lexnames").is_file() and all((target / f).is_file() for f in _DEBIAN_FILES):
        return target
    staging = target.with_name(f"wordnet.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in _DEBIAN_FILES:
        shutil.copyfile(source / name, staging / name)
    (staging / "lexnames").write_text(lexnames_text())
    (staging / "LICENSE").write_text("WordNet 3.0 license: Copyright 2006 by Princeton University. Copied from Debian's wordnet-base.\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def _announce(text: str) -> None:
    """One line on stderr for a one-time step that takes a while (the copy, the index build)."""
    print(f"graders: {text}", file=sys.stderr, flush=True)


def _reader(corpus_dir: Path) -> Any:
    """A reader over `corpus_dir`; nltk ≥ 3.9 only reads corpora under its data path, so the root joins it."""
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    root = str(corpus_dir.resolve().parent.parent if corpus_dir.parent.name == "corpora" else corpus_dir.resolve().parent)
    if root not in nltk.data.path:
        nltk.data.path.append(root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available": OMW is not needed for English
        return WordNetCorpusReader(str(corpus_dir.resolve()), None)


def load_wordnet(
    wordnet_dir: str | None, debian_dir: Path = DEBIAN_WORDNET, *, cache_dir: Path, download: bool = False
) -> tuple[Any, str]:
    """(WordNet reader, where it came from); raises `LookupError` with the install hint when none is found.

    `cache_dir` is where Debian's copy is laid out (the caller takes it from `Options.cache_dir`)."""
    key = f"{wordnet_dir}|{debian_dir}|{cache_dir}|{download}"
    with _lock:
        if key in _readers:
            return _readers[key]
        found = _find(wordnet_dir, debian_dir, cache_dir, download)
        _readers[key] = found
        return found


def _find(wordnet_dir: str | None, debian_dir: Path, cache_dir: Path, download: bool) -> tuple[Any, str]:
    corpus, source = _locate(wordnet_dir, debian_dir, cache_dir, download)
    return _reader(Path(corpus)), source


def _locate(wordnet_dir: str | None, debian_dir: Path, cache_dir: Path, download: bool) -> tuple[str, str]:
    """(the corpus, where it came from): laid out from Debian's copy if need be, without building a reader."""
    if wordnet_dir is not None:
        path = Path(wordnet_dir)
        if (path / "lexnames").is_file():
            return str(path), f"wordnet_dir {path}"
        raise LookupError(f"{path} is not a WordNet corpus directory (no lexnames). {INSTALL_HINT}")
    import nltk

    try:
        located = nltk.data.find("corpora/wordnet")
        return str(located), f"nltk data {located}"
    except LookupError:
        pass
    if (debian_dir / "data.noun").is_file():
        try:
            target = cache_dir / "corpora" / "wordnet"
            if not (target / "lexnames").is_file():
                _announce(f"copying WordNet 3.0 from {debian_dir} into {target} for METEOR (once)")
            corpus = layout_debian_wordnet(debian_dir, cache_dir)
            return str(corpus), f"Debian wordnet-base via {corpus}"
        except OSError as exc:
            raise LookupError(f"could not lay out Debian's WordNet: {exc}. {INSTALL_HINT}") from None
    if download and nltk.download("wordnet", quiet=True):
        located = nltk.data.find("corpora/wordnet")
        return str(located), f"nltk.download {located}"
    raise LookupError(f"no WordNet found. {INSTALL_HINT}")


INDEX_FORMAT = 2
"""Bumped whenever what the index holds changes, so an old file is rebuilt rather than misread."""


_SEP = "\x00"
"""Joins the lemma names of a form in the index file (one string per form loads several times faster than a list)."""


class _Lemma(str):
    """A lemma name, answering `name()` as nltk's `Lemma` does (all METEOR asks of a lemma)."""

    __slots__ = ()

    def name(self) -> str:
        return self


class _Synsets:
    """The synsets of one form and part of speech, as one: METEOR only takes the union of their lemma names."""

    __slots__ = ("_lemmas",)

    def __init__(self, names: str) -> None:
        self._lemmas = [_Lemma(n) for n in names.split(_SEP)] if names else []

    def lemmas(self) -> list[_Lemma]:
        return self._lemmas


class WordNetIndex:
    """The part of WordNet METEOR reads, answering `synsets(word)` with the lemma names nltk's reader gives.

    `synsets` and `_morphy` follow nltk's `WordNetCorpusReader.synsets(lemma)` (English, all parts of speech,
    exceptions checked) step for step, with nltk's own `POS_LIST` and `MORPHOLOGICAL_SUBSTITUTIONS`;
    `tests/test_meteor_wordnet.py` holds the scores to nltk's `meteor_score` over the full reader.
    """

    def __init__(self, data: dict[str, Any]) -> None:
        from nltk.corpus.reader.wordnet import POS_LIST, WordNetCorpusReader

        self._forms: dict[str, dict[str, str]] = data["forms"]
        self._exceptions: dict[str, dict[str, str]] = data["exceptions"]
        self._version: str = data["version"]
        self._pos = tuple(POS_LIST)
        self._rules = {p: tuple(WordNetCorpusReader.MORPHOLOGICAL_SUBSTITUTIONS[p]) for p in POS_LIST}
        self._made: dict[tuple[str, str], _Synsets] = {}

    def get_version(self) -> str:
        return self._version

    def synsets(self, lemma: str) -> list[_Synsets]:
        lemma = lemma.lower()
        out = []
        for pos in self._pos:
            for form in self._morphy(lemma, pos):
                made = self._made.get((pos, form))
                if made is None:
                    made = self._made[(pos, form)] = _Synsets(self._forms[pos][form])
                out.append(made)
        return out

    def _morphy(self, form: str, pos: str) -> list[str]:
        known = self._forms[pos]
        exceptions = self._exceptions[pos]
        if form in exceptions:
            forms = exceptions[form].split(_SEP)
        else:
            forms = [form[: -len(old)] + new for old, new in self._rules[pos] if form.endswith(old)]
        result: list[str] = []
        for candidate in [form, *forms]:
            if candidate in known and candidate not in result:
                result.append(candidate)
        return result


def build_index(reader: Any) -> dict[str, Any]:
    """The index data, read from nltk's own reader of the real WordNet: per part of speech, each lemma with the
    names of all its synsets' lemmas, and the morphy exception lists."""
    from nltk.corpus.reader.wordnet import POS_LIST

    names_of: dict[tuple[str, int], tuple[str, ...]] = {}
    forms: dict[str, dict[str, str]] = {p: {} for p in POS_LIST}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lemma, by_pos in reader._lemma_pos_offset_map.items():
            for pos in POS_LIST:
                if pos not in by_pos:
                    continue
                names: list[str] = []
                for offset in by_pos[pos]:
                    found = names_of.get((pos, offset))
                    if found is None:
                        synset = reader.synset_from_pos_and_offset(pos, offset)
                        found = names_of[(pos, offset)] = tuple(l.name() for l in synset.lemmas()) if synset else ()
                    names.extend(found)
                forms[pos][lemma] = _SEP.join(names)
    exceptions = {p: {k: _SEP.join(v) for k, v in reader._exception_map[p].items()} for p in POS_LIST}
    return {"format": INDEX_FORMAT, "version": str(reader.get_version()), "forms": forms, "exceptions": exceptions}


def _index_key(corpus: str) -> str:
    """What the index depends on: the corpus files (path, sizes and times), nltk's version and the format."""
    import nltk

    parts = [corpus, nltk.__version__, str(INDEX_FORMAT), sys.version.split()[0]]
    path = Path(corpus)
    files = sorted(path.iterdir()) if path.is_dir() else ([path] if path.exists() else [])
    for f in files:
        st = f.stat()
        parts.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def _load_index_file(path: Path) -> dict[str, Any] | None:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != INDEX_FORMAT or not isinstance(data.get("forms"), dict):
        return None
    return data


_indexes: dict[str, tuple[WordNetIndex, str]] = {}


def load_meteor_wordnet(
    wordnet_dir: str | None, debian_dir: Path = DEBIAN_WORDNET, *, cache_dir: Path, download: bool = False
) -> tuple[WordNetIndex, str]:
    """(the compact index METEOR reads, where its WordNet came from), built once into `cache_dir` from the real
    corpus `load_wordnet` finds; raises `LookupError` with the install hint when there is none."""
    key = f"{wordnet_dir}|{debian_dir}|{cache_dir}|{download}"
    with _lock:
        if key in _indexes:
            return _indexes[key]
        corpus, source = _locate(wordnet_dir, debian_dir, cache_dir, download)
        index_file = cache_dir / "graders-meteor-index" / f"wordnet-{_index_key(corpus)}.json"
        data = _load_index_file(index_file)
        if data is None:
            _announce(f"building the WordNet index METEOR reads, from {corpus}, into {index_file} (once, about half a minute)")
            data = build_index(_reader(Path(corpus)))
            try:
                index_file.parent.mkdir(parents=True, exist_ok=True)
                staging = index_file.with_name(f"{index_file.name}.tmp-{os.getpid()}")
                staging.write_bytes(orjson.dumps(data))
                staging.replace(index_file)
            except OSError as exc:
                _announce(f"could not keep the WordNet index in {index_file} ({exc.strerror or exc}); it is rebuilt next time")
        found = _indexes[key] = (WordNetIndex(data), source)
        return found
