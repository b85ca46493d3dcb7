"""text_similarity throughput: the engine against the raw library call on the same pairs, in the same run.

Per metric: samples/s through `graders.compile(...).run_many` and through the bare library call the metric wraps
(target: engine overhead ≤ 10 % except cosine), plus the ROUGE fast path against rouge-score at 50 and 500 words
(target: rouge_l ≥ 50× at 500 words; every ROUGE type at least as fast as rouge-score), and `fuzzy_match` through
`run_many` beside a plain loop calling `fuzz.ratio` on 2,000 pairs of 10-word and of 150-word texts, in this process
that has WordNet loaded (a large heap, where the garbage collector once made it 1.5-3.5x; target ≤ 1.10x).

    python benchmarks/bench_text_similarity.py [--pairs 2000]
"""

from __future__ import annotations

import argparse
import random
import time
import warnings
from pathlib import Path

from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
from nltk.translate.gleu_score import sentence_gleu
from nltk.translate.meteor_score import meteor_score
from rapidfuzz import fuzz
from rouge_score import rouge_scorer

import graders
from graders.options import Options
from graders.resources.wordnet import load_wordnet

WORDS = "the a cat dog sat ran on under mat rug quickly slowly Paris capital France is was big small red blue".split()


def texts(n: int, length: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [(" ".join(rng.choices(WORDS, k=length)), " ".join(rng.choices(WORDS, k=length))) for _ in range(n)]


def timed(fn) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def raw_calls():
    meteor = Options().text_similarity.meteor
    wordnet, _ = load_wordnet(meteor.wordnet_dir, cache_dir=Path(meteor.wordnet_cache))
    smooth = SmoothingFunction().method1
    scorers = {k: rouge_scorer.RougeScorer([k]) for k in ("rouge1", "rouge2", "rougeL")}
    return {
        "fuzzy_match": lambda h, r: fuzz.ratio(h, r) / 100,
        "bleu": lambda h, r: sentence_bleu([r.split()], h.split(), smoothing_function=smooth),
        "gleu": lambda h, r: sentence_gleu([r.split()], h.split(), min_len=1, max_len=4),
        "meteor": lambda h, r: meteor_score([r.split()], h.split(), wordnet=wordnet),
        "rouge_1": lambda h, r: scorers["rouge1"].score(r, h)["rouge1"].fmeasure,
        "rouge_2": lambda h, r: scorers["rouge2"].score(r, h)["rouge2"].fmeasure,
        "rouge_l": lambda h, r: scorers["rougeL"].score(r, h)["rougeL"].fmeasure,
    }


def engine_vs_raw(n: int) -> None:
    pairs = texts(n, 20, 1)
    rows = [{"model_sample": h, "item": {"r": r}} for h, r in pairs]
    print(f"engine (run_many) vs the raw library call, {n} pairs of 20-word texts")
    print(f"  {'metric':12s} {'raw/s':>10s} {'engine/s':>10s} {'overhead':>9s}")
    for metric, raw in raw_calls().items():
        grader = graders.compile({"type": "text_similarity", "input": "{{ sample.output_text }}", "reference": "{{ item.r }}", "evaluation_metric": metric})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw_s = timed(lambda: [raw(h, r) for h, r in pairs])
        engine_s = timed(lambda: grader.run_many(rows))
        print(f"  {metric:12s} {n / raw_s:>10,.0f} {n / engine_s:>10,.0f} {engine_s / raw_s - 1:>+8.1%}")


def rouge_speedups() -> None:
    from graders.evaluators.text_similarity.rouge import Rouge

    print("\nROUGE fast path vs rouge-score (same scores; per pair)")
    print(f"  {'type':8s} {'words':>5s} {'rouge-score µs':>15s} {'fast µs':>9s} {'speed-up':>9s}")
    for length, n in ((50, 400), (500, 40)):
        pairs = texts(n, length, length)
        for metric, key in (("rouge_1", "rouge1"), ("rouge_2", "rouge2"), ("rouge_5", "rouge5"), ("rouge_l", "rougeL")):
            ref = rouge_scorer.RougeScorer([key])
            fast = Rouge(metric, Options()).score
            assert all(fast(h, r) == ref.score(r, h)[key].fmeasure for h, r in pairs[:20])
            ref_s = timed(lambda: [ref.score(r, h) for h, r in pairs])
            fast_s = timed(lambda: [fast(h, r) for h, r in pairs])
            print(f"  {metric:8s} {length:>5d} {ref_s / n * 1e6:>15.1f} {fast_s / n * 1e6:>9.1f} {ref_s / fast_s:>8.1f}x")


def fuzzy_vs_plain_loop(n: int) -> None:
    """Called after `raw_calls()` has loaded WordNet, so the heap is as large as in a process that also runs METEOR."""
    print(f"\nfuzzy_match run_many vs a plain fuzz.ratio loop, {n} pairs, WordNet loaded (target <= 1.10x)")
    grader = graders.compile({"type": "text_similarity", "input": "{{ sample.output_text }}", "reference": "{{ item.r }}", "evaluation_metric": "fuzzy_match"})
    for words in (10, 150):
        pairs = texts(n, words, words)
        rows = [{"model_sample": h, "item": {"r": r}} for h, r in pairs]
        loop_s = timed(lambda: [fuzz.ratio(h, r) / 100 for h, r in pairs])
        engine_s = timed(lambda: grader.run_many(rows))
        print(f"  {words:>3d} words: loop {loop_s / n * 1e6:6.2f} µs/pair, run_many {engine_s / n * 1e6:6.2f} µs/pair, x{engine_s / loop_s:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000)
    args = parser.parse_args()
    engine_vs_raw(args.pairs)
    fuzzy_vs_plain_loop(args.pairs)
    rouge_speedups()


if __name__ == "__main__":
    main()
