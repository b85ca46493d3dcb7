"""`text_similarity` (§7): every metric on the §7.4 calibration probes, for the default and each variant."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import graders
from graders import Options

P = {
    "P1": ("Hello World", "world hello!"),
    "P2": ("The cat sat on the mat.", "the cat sat on a mat"),
    "P3": ("Paris", "The capital of France is Paris."),
    "P4": ("running quickly", "runs quick"),
    "P5": ("Paris", "Paris"),
}


def score(metric: str, hypothesis: str, reference: str, **opts) -> graders.GraderRunResponse:
    grader = {"type": "text_similarity", "name": "t", "input": "{{ sample.output_text }}", "reference": "{{ item.r }}", "evaluation_metric": metric}
    return graders.run(grader, hypothesis, {"r": reference}, options=Options().with_values(opts) if opts else None)


TABLE_A = {  # fuzzy_match candidates (U19), score / 100
    "ratio": [0.347826, 0.837209, 0.277778, 0.720000],
    "ratio_dp": [0.454545, 0.904762, 0.285714, 0.720000],
    "wratio": [0.743478, 0.839535, 0.900000, 0.720000],
    "wratio_dp": [0.950000, 0.950000, 0.900000, 0.720000],
    "token_set_dp": [1.000000, 1.000000, 1.000000, 0.720000],
    "token_sort_dp": [1.000000, 0.857143, 0.285714, 0.720000],
    "partial": [0.500000, 0.850000, 1.000000, 0.700000],
}


@pytest.mark.parametrize(("scorer", "probe"), [(s, p) for s in TABLE_A for p in range(4)])
def test_fuzzy_match_table_a_U19(scorer, probe):
    hyp, ref = P[f"P{probe + 1}"]
    resp = score("fuzzy_match", hyp, ref, **{"text_similarity.fuzzy_match.scorer": scorer})
    assert resp.reward == pytest.approx(TABLE_A[scorer][probe], abs=1e-6)
    assert resp.details["metric"]["variant"] == scorer


def test_fuzzy_match_default_is_plain_ratio_U19():
    """§7.2: plain `fuzz.ratio(input, reference) / 100`, no processor (the hosted value it reproduces)."""
    from rapidfuzz import fuzz

    resp = score("fuzzy_match", *P["P1"])
    assert resp.reward == fuzz.ratio(*P["P1"]) / 100 == pytest.approx(0.347826, abs=1e-6)
    assert resp.details["metric"]["variant"] == "ratio" and resp.details["metric"]["processor"] is None
    assert score("fuzzy_match", "", "").reward == 1.0  # the default's value for two empty texts (Table D)


BULK_TEXTS = ["", " ", "Paris", "paris!", "The cat sat on the mat.", "the cat sat on a mat", "!!!", "???", "東京は首都",
              "Hello World", "world hello!", "a" * 300, "ab " * 120, "Ünïcödé ß", "x"]  # fmt: skip


@pytest.mark.parametrize("scorer", list(TABLE_A))
def test_fuzzy_match_bulk_path_equals_the_per_pair_path_for_every_scorer(scorer):
    """run_many's rapidfuzz `cpdist` path (≥ 64 pairs) gives, bit for bit, what `run` gives pair by pair."""
    grader = graders.compile(
        {"type": "text_similarity", "input": "{{ sample.output_text }}", "reference": "{{ item.r }}", "evaluation_metric": "fuzzy_match"},
        Options().with_values({"text_similarity.fuzzy_match.scorer": scorer}),
    )
    rows = [{"model_sample": h, "item": {"r": r}} for h in BULK_TEXTS for r in BULK_TEXTS]
    assert len(rows) >= 64
    bulk = [r.reward for r in grader.run_many(rows)]
    assert bulk == [grader.run(row["model_sample"], row["item"]).reward for row in rows]


# Table B: word metrics with str.split() tokens (P1..P5).
TABLE_B = {
    ("bleu", ()): [0, 0.217119, 0, 0, 0.177828],
    ("bleu", (("text_similarity.bleu.smoothing", "none"),)): [0, 6.2e-78, 0, 0, 1.8e-231],
    ("bleu", (("text_similarity.bleu.smoothing", "method4"),)): [0, 0.251198, 0, 0, 1],
    ("bleu", (("text_similarity.bleu.implementation", "sacrebleu"),)): [0, 0.277762, 0.002479, 0, 1],
    ("gleu", ()): [0, 0.388889, 0, 0, 1],
    ("rouge_1", ()): [1, 0.833333, 0.285714, 0, 1],
    ("rouge_1", (("text_similarity.rouge.stemmer", True),)): [1, 0.833333, 0.285714, 0.5, 1],
    ("rouge_2", ()): [0, 0.6, 0, 0, 0],
    ("rouge_l", ()): [0.5, 0.833333, 0.285714, 0, 1],
    ("rouge_1", (("text_similarity.rouge.measure", "precision"),)): [1, 0.833333, 1, 0, 1],
    ("rouge_1", (("text_similarity.rouge.measure", "recall"),)): [1, 0.833333, 0.166667, 0, 1],
    ("meteor", ()): [0.25, 0.625, 0, 0.25, 0.5],
}
# Table C: tokenizer nltk_word.
TABLE_C = {
    ("bleu", (("text_similarity.bleu.tokenizer", "nltk_word"),)): [0, 0.185751, 0.000441, 0, 0.177828],
    ("gleu", (("text_similarity.gleu.tokenizer", "nltk_word"),)): [0, 0.363636, 0.045455, 0, 1],
    ("meteor", (("text_similarity.meteor.tokenizer", "nltk_word"),)): [0.344828, 0.731148, 0.078125, 0.25, 0.5],
}
CASES = [(m, o, p, v[p]) for table in (TABLE_B, TABLE_C) for (m, o), v in table.items() for p in range(5)]


@pytest.mark.parametrize(("metric", "opts", "probe", "expected"), CASES, ids=lambda x: str(x) if not isinstance(x, tuple) else "-".join(f"{k.split('.')[-1]}={v}" for k, v in x) or "default")
def test_word_metrics_tables_b_c_U20_U23(metric, opts, probe, expected):
    hyp, ref = P[f"P{probe + 1}"]
    resp = score(metric, hyp, ref, **dict(opts))
    assert not resp.failed, resp.details
    if expected and expected < 1e-6:
        assert 0 < resp.reward < 1e-6
    else:
        assert resp.reward == pytest.approx(expected, abs=1e-6)


METRICS_DOC = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"
DOC_B_COLUMNS = {  # Table B's column headings in docs/metrics.md → the TABLE_B case they show
    "bleu none": ("bleu", (("text_similarity.bleu.smoothing", "none"),)),
    "bleu m1": ("bleu", ()),
    "bleu m4": ("bleu", (("text_similarity.bleu.smoothing", "method4"),)),
    "sacrebleu/100": ("bleu", (("text_similarity.bleu.implementation", "sacrebleu"),)),
    "gleu": ("gleu", ()),
    "rouge1 F": ("rouge_1", ()),
    "rouge1 F stem": ("rouge_1", (("text_similarity.rouge.stemmer", True),)),
    "rouge2 F": ("rouge_2", ()),
    "rougeL F": ("rouge_l", ()),
    "rouge1 P": ("rouge_1", (("text_similarity.rouge.measure", "precision"),)),
    "rouge1 R": ("rouge_1", (("text_similarity.rouge.measure", "recall"),)),
    "meteor": ("meteor", ()),
}
DOC_C_COLUMNS = {"bleu m1": "bleu", "gleu": "gleu", "meteor": "meteor"}


def doc_table(title: str) -> dict[str, list[float]]:
    """One calibration table of docs/metrics.md as {column heading: [value on P1, P2, …]}."""
    section = METRICS_DOC.read_text().split(f"### {title}", 1)[1].split("\n### ", 1)[0]
    lines = [line.strip().strip("|") for line in section.splitlines() if line.startswith("| ")]
    header = [cell.strip().strip("`") for cell in lines[0].split("|")]
    rows = [[cell.strip() for cell in line.split("|")] for line in lines[2:] if line.startswith(" P")]
    return {column: [float(row[i]) for row in rows] for i, column in enumerate(header) if i}


def test_docs_calibration_tables_are_the_tested_values():
    """docs/metrics.md Tables A–C carry exactly the values the tests above check against the engine, on these probes."""
    for doc in (METRICS_DOC, METRICS_DOC.with_name("behaviour.md")):
        probes = re.findall(r"^\| (P\d) \| `([^`]*)` \| `([^`]*)` \|$", doc.read_text(), re.M)
        assert {name: (hyp, ref) for name, hyp, ref in probes} == P and len(probes) == len(P), doc.name
    table_a = doc_table("Table A")
    assert table_a.keys() == TABLE_A.keys()
    for scorer, values in TABLE_A.items():
        assert table_a[scorer] == pytest.approx(values, abs=1e-6), scorer
    table_b = doc_table("Table B")
    assert table_b.keys() == DOC_B_COLUMNS.keys()
    for column, case in DOC_B_COLUMNS.items():
        assert table_b[column] == pytest.approx(TABLE_B[case], abs=1e-6), column
    table_c = doc_table("Table C")
    assert table_c.keys() == DOC_C_COLUMNS.keys()
    for (metric, _), values in TABLE_C.items():
        column = next(c for c, m in DOC_C_COLUMNS.items() if m == metric)
        assert table_c[column] == pytest.approx(values, abs=1e-6), column


def test_sacrebleu_identical_strings_clamped_to_one():
    """§7.1: sacrebleu gives 1.0000000000000004; the reward range is 0–1."""
    assert score("bleu", "Paris", "Paris", **{"text_similarity.bleu.implementation": "sacrebleu"}).reward == 1.0


METRICS = ["fuzzy_match", "bleu", "gleu", "meteor", "rouge_1", "rouge_2", "rouge_3", "rouge_4", "rouge_5", "rouge_l"]


@pytest.mark.parametrize("metric", METRICS)
def test_edge_cases_table_d(metric):
    """Table D: "" vs "" is 1 for fuzzy_match's plain ratio and 0 for every word metric; "abc" vs "" is 0 either
    way; "!!!" vs "???" 0."""
    assert score(metric, "", "").reward == (1.0 if metric == "fuzzy_match" else 0.0)
    assert score(metric, "abc", "").reward == 0.0
    assert score(metric, "", "abc").reward == 0.0
    assert score(metric, "!!!", "???").reward == 0.0


def test_edge_cases_table_d_processor_variants():
    for scorer in ("wratio", "wratio_dp", "token_set_dp"):
        assert score("fuzzy_match", "", "", **{"text_similarity.fuzzy_match.scorer": scorer}).reward == 0.0
    assert score("fuzzy_match", "!!!", "???", **{"text_similarity.fuzzy_match.scorer": "ratio_dp"}).reward == 1.0
    assert score("fuzzy_match", "!!!", "???", **{"text_similarity.fuzzy_match.scorer": "token_sort_dp"}).reward == 1.0


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize(
    ("hyp", "ref"),
    [("   ", "  \n\t "), ("東京は日本の首都です", "日本の首都は東京です"), ("สวัสดีครับ", "สวัสดีค่ะ"), ("Привет мир", "привет, мир!")],
    ids=["whitespace", "cjk", "thai", "cyrillic"],
)
def test_never_crashes_and_stays_in_range(metric, hyp, ref):
    resp = score(metric, hyp, ref)
    assert not resp.failed and 0.0 <= resp.reward <= 1.0


def test_rouge_score_scores_cjk_zero_unless_unicode_tokenizer():
    """rouge-score keeps only [a-z0-9] runs, so CJK scores 0; the unicode tokenizer option does not."""
    assert score("rouge_1", "東京 は 首都", "東京 は 首都").reward == 0.0
    assert score("rouge_1", "東京 は 首都", "東京 は 首都", **{"text_similarity.rouge.tokenizer": "unicode"}).reward == 1.0


@pytest.mark.parametrize("metric", ["fuzzy_match", "rouge_1", "rouge_l", "gleu", "meteor", "bleu"])
def test_texts_at_the_size_limit_score(metric):
    big = ("the quick brown fox jumps over the lazy dog " * 2500)[:100_000]
    resp = score(metric, big, big[:-1000])
    assert not resp.failed and 0.9 < resp.reward <= 1.0


@pytest.mark.parametrize("metric", METRICS)
def test_a_text_past_text_similarity_max_chars_is_flagged_naming_it(metric):
    """1 MB against 1 MB (42 s in fuzzy_match before the limit) is other_error at once, naming the input."""
    big = "ab " * 350_000
    for hyp, ref, field in ((big, "abc", "input"), ("abc", big, "reference")):
        resp = score(metric, hyp, ref)
        assert resp.reward == 0.0 and resp.errors["other_error"]
        assert resp.details["param"] == field and resp.details["limit"] == "text_similarity.max_chars"
        assert resp.details["error"].startswith(f"{field} is 1,050,000 characters")


@pytest.mark.parametrize("scorer", ["partial", "wratio", "wratio_dp"])
def test_partial_ratio_is_bounded_by_max_partial_chars(scorer):
    """`partial_ratio` grows with the cube of the shorter text (10k against 10k: over a minute), so that text is
    bounded; WRatio uses it only when one text is 1.5x the other, and is not limited otherwise."""
    opts = {"text_similarity.fuzzy_match.scorer": scorer}
    long_a, long_b = "abcde " * 600, "abcdf " * 1000  # 3,600 and 6,000 characters
    resp = score("fuzzy_match", long_a, long_b, **opts)
    assert resp.errors["other_error"] and resp.details["param"] == "input"
    assert resp.details["limit"] == "text_similarity.fuzzy_match.max_partial_chars"
    assert not score("fuzzy_match", long_a, long_b, **opts, **{"text_similarity.fuzzy_match.max_partial_chars": 4000}).failed
    even = score("fuzzy_match", long_a, long_a[::-1], **opts)
    assert even.failed == (scorer == "partial")


def test_signature_records_the_variant():
    sig = score("bleu", *P["P2"], **{"text_similarity.bleu.smoothing": "method4"}).details["metric"]
    assert sig["smoothing"] == "method4" and sig["tokenizer"] == "split" and sig["library"].startswith("nltk==")
    assert "details" not in score("bleu", *P["P2"]).model_dump()


def test_template_error_and_run_many_bulk_path_agree():
    grader = graders.compile({"type": "text_similarity", "input": "{{ sample.output_text }}", "reference": "{{ item.r }}", "evaluation_metric": "fuzzy_match"})
    rows = [{"model_sample": h, "item": {"r": r}} for h, r in P.values()] * 30 + [{"model_sample": "x", "item": {}}]
    bulk = grader.run_many(rows)
    single = [grader.run(r["model_sample"], r["item"]) for r in rows]
    assert [b.reward for b in bulk] == [s.reward for s in single]
    assert bulk[-1].errors["invalid_variable_error"]


def test_pass_threshold_ignored_outside_evals_U18():
    grader = {"type": "text_similarity", "input": "a", "reference": "a", "evaluation_metric": "fuzzy_match", "pass_threshold": 0.99}
    assert graders.run(grader, "x").reward == 1.0
