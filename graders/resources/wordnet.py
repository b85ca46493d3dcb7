"""WordNet 3.0 for METEOR, found offline (spec §7.2): never downloaded at run time unless asked.

Looked up in order: an nltk `wordnet` corpus on nltk's data path; Debian's `wordnet-base` + `wordnet-sense-index`
(`/usr/share/wordnet`), copied (not linked: recent nltk rejects links leading outside its data directory) into a
cache laid out as `corpora/wordnet` with the `lexnames` file Debian does not ship, generated from the lexnames(5WN)
table; then `nltk.download("wordnet")` only when `text_similarity.meteor.wordnet_download` is on.
"""

from __future__ import annotations

import os
import shutil
import threading
import warnings
from pathlib import Path
from typing import Any

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
    if wordnet_dir is not None:
        path = Path(wordnet_dir)
        if (path / "lexnames").is_file():
            return _reader(path), f"wordnet_dir {path}"
        raise LookupError(f"{path} is not a WordNet corpus directory (no lexnames). {INSTALL_HINT}")
    import nltk

    try:
        located = nltk.data.find("corpora/wordnet")
        return _reader(Path(str(located))), f"nltk data {located}"
    except LookupError:
        pass
    if (debian_dir / "data.noun").is_file():
        try:
            corpus = layout_debian_wordnet(debian_dir, cache_dir)
            return _reader(corpus), f"Debian wordnet-base via {corpus}"
        except OSError as exc:
            raise LookupError(f"could not lay out Debian's WordNet: {exc}. {INSTALL_HINT}") from None
    if download and nltk.download("wordnet", quiet=True):
        located = nltk.data.find("corpora/wordnet")
        return _reader(Path(str(located))), f"nltk.download {located}"
    raise LookupError(f"no WordNet found. {INSTALL_HINT}")
