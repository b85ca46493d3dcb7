"""The batch pipeline: order across workers, resume after kill -9, torn lines, refusals, layouts, summary, report."""

from __future__ import annotations

import gc
import io
import json
import math
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

import graders
from graders.batch.cores import available_cores, cgroup_cpu_limit
from graders.batch.pipeline import grader_path
from graders.cli import main

ROOT = Path(__file__).resolve().parent.parent
MULTI = str(ROOT / "fixtures" / "graders" / "answer_checks_multi.json")
EXACT = str(ROOT / "fixtures" / "graders" / "exact_answer.json")
SMALL = ["-o", "batch.parallel_min_rows=1", "-o", "batch.block_bytes=1024"]
ANSWERS = ["Paris", "The capital is paris.", "Sorry, Ottawa", "paris", "I think Lyon"]


def cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out), out.getvalue()


def write_rows(path: Path, n: int, *, extra: dict | None = None) -> list[dict]:
    rows = [{"model_sample": ANSWERS[i % 5] + (" " * (i % 7)), "item": {"answer": "Paris"}, "id": f"r{i}", **(extra or {})} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def without_time(lines: list[str]) -> list[dict]:
    out = []
    for line in lines:
        body = json.loads(line)
        target = body.get("response", body)
        if "metadata" in target:
            target["metadata"].pop("execution_time")
        out.append(body)
    return out


def graders_cmd(*argv: str) -> list[str]:
    return [sys.executable, "-m", "graders.cli", *argv]


# -- cores -------------------------------------------------------------------------------------------------------


def test_default_workers_are_the_cores_this_process_may_use():
    assert available_cores() == min(len(os.sched_getaffinity(0)), available_cores())
    assert graders.compile(json.loads(Path(EXACT).read_text())).options.batch.workers is None


def test_cgroup_v2_cpu_max_caps_the_cores(tmp_path):
    root = tmp_path / "cg"
    (root / "job").mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu\n")
    (root / "job" / "cpu.max").write_text("150000 100000\n")
    proc = tmp_path / "cgroup"
    proc.write_text("0::/job\n")
    assert cgroup_cpu_limit(root, proc) == 1.5
    assert available_cores(root, proc) == min(2, len(os.sched_getaffinity(0)))
    (root / "job" / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(root, proc) is None
    (root / "cpu.max").write_text("50000 100000\n")
    assert available_cores(root, proc) == 1


def test_cgroup_v1_cfs_quota_caps_the_cores(tmp_path):
    root = tmp_path / "cg"
    (root / "cpu" / "job").mkdir(parents=True)
    (root / "cpu" / "job" / "cpu.cfs_quota_us").write_text("100000\n")
    (root / "cpu" / "job" / "cpu.cfs_period_us").write_text("100000\n")
    proc = tmp_path / "cgroup"
    proc.write_text("4:cpu,cpuacct:/job\n")
    assert available_cores(root, proc) == 1


# -- run_many / iter_run ----------------------------------------------------------------------------------------


def test_run_many_keeps_input_order_across_workers():
    compiled = graders.compile(json.loads(Path(MULTI).read_text()), graders.Options().with_values({"batch.parallel_min_rows": 10, "batch.block_rows": 37, "batch.shard_min_row_us": 0}))
    rows = [{"model_sample": ANSWERS[i % 5] + "!" * (i % 3), "item": {"answer": "Paris" if i % 4 else "Lyon"}} for i in range(3000)]
    rows[1234] = {"model_sample": 5, "item": {}}
    one = [r.model_dump() for r in compiled.run_many(rows, workers=1)]
    two = [r.model_dump() for r in compiled.run_many(rows, workers=2)]
    for body in one + two:
        body["metadata"].pop("execution_time")
    assert one == two
    assert two[1234]["metadata"]["errors"]["other_error"] is True


def test_small_inputs_stay_in_process():
    compiled = graders.compile(json.loads(Path(EXACT).read_text()))
    it = compiled.iter_run([{"model_sample": "Paris", "item": {"answer": "Paris"}}] * 10, workers=2)
    next(it)
    assert multiprocessing.active_children() == []
    assert len(list(it)) == 9


def test_cheap_graders_stay_in_process_when_rows_are_in_memory():
    """string_check costs a few µs a row, less than moving the row to a shard and its outcome back."""
    compiled = graders.compile(json.loads(Path(EXACT).read_text()), graders.Options().with_values({"batch.parallel_min_rows": 50}))
    it = compiled.iter_run(({"model_sample": "Paris", "item": {"answer": "Paris"}} for _ in range(5000)), workers=2)
    assert sum(next(it).reward for _ in range(51)) == 51
    assert [p for p in multiprocessing.active_children() if p.name.startswith("graders-shard")] == []
    assert sum(r.reward for r in it) == 4949


def test_large_inputs_use_shards_and_stop_them():
    compiled = graders.compile(json.loads(Path(EXACT).read_text()), graders.Options().with_values({"batch.parallel_min_rows": 50, "batch.shard_min_row_us": 0}))
    it = compiled.iter_run(({"model_sample": "Paris", "item": {"answer": "Paris"}} for _ in range(5000)), workers=2)
    assert sum(next(it).reward for _ in range(50)) == 50
    assert [p for p in multiprocessing.active_children() if p.name.startswith("graders-shard")] == []
    next(it)
    assert len([p for p in multiprocessing.active_children() if p.name.startswith("graders-shard")]) == 2
    assert sum(r.reward for r in it) == 4949
    assert [p for p in multiprocessing.active_children() if p.name.startswith("graders-shard")] == []


def test_model_graders_stay_on_the_parent_and_python_goes_to_shards():
    sc = {"type": "string_check", "input": "a", "reference": "a", "operation": "eq"}
    judge = {"type": "score_model", "model": "gpt-4.1", "input": [{"role": "user", "content": "x"}]}
    py = {"type": "python", "source": "def grade(s, i):\n    return 1.0\n"}
    def path(g):
        return grader_path(graders.compile(g).config)
    assert path(sc) == "cpu" and path(py) == "python" and path(judge) == "parent"
    assert path({"type": "multi", "graders": {"a": sc, "b": judge}, "calculate_output": "a + b"}) == "parent"
    assert path({"type": "multi", "graders": {"a": sc, "b": py}, "calculate_output": "a + b"}) == "python"
    cosine = {"type": "text_similarity", "input": "a", "reference": "b", "evaluation_metric": "cosine"}
    assert path({"type": "multi", "graders": {"a": sc, "c": cosine}, "calculate_output": "a"}) == "parent"


def test_run_many_leaves_the_garbage_collector_as_it_was():
    compiled = graders.compile(json.loads(Path(EXACT).read_text()))
    compiled.run_many(["Paris"] * 10, workers=1)
    assert gc.isenabled()
    gc.disable()
    try:
        compiled.run_many(["Paris"] * 10, workers=1)
        assert not gc.isenabled()
    finally:
        gc.enable()


# -- graders batch: order, bad rows, layouts ------------------------------------------------------------------


def test_batch_output_is_in_input_order_across_workers(tmp_path):
    data = tmp_path / "rows.jsonl"
    write_rows(data, 4000)
    for workers in ("1", "2"):
        assert cli("batch", MULTI, str(data), "--out", str(tmp_path / f"out{workers}.jsonl"), "--workers", workers, "--quiet", *SMALL)[0] == 0
    one = without_time((tmp_path / "out1.jsonl").read_text().splitlines())
    two = without_time((tmp_path / "out2.jsonl").read_text().splitlines())
    assert len(one) == 4000 and one == two
    direct = graders.compile(json.loads(Path(MULTI).read_text())).run_many(json.loads(line) for line in data.read_text().splitlines())
    assert [b["reward"] for b in two] == [r.reward for r in direct]


def test_bad_lines_are_marked_with_their_line_number_and_the_rest_go_on(tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text('{"model_sample": "Paris", "item": {"answer": "Paris"}}\n\n{not json\n  \n[1, 2]\n{"model_sample": "Paris", "item": {"answer": "Paris"}}')
    out = tmp_path / "out.jsonl"
    assert cli("batch", EXACT, str(data), "--out", str(out), "--quiet", "--details", "--workers", "2", *SMALL)[0] == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["reward"] for line in lines] == [1.0, 0.0, 0.0, 1.0]
    assert "line 3 is not valid JSON" in lines[1]["details"]["error"]
    assert lines[2]["metadata"]["errors"]["other_error"] is True


def test_sample_field_and_item_field_take_dotted_paths(tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps({"out": {"text": "Paris"}, "meta": {"gold": {"answer": "Paris"}}}) + "\n"
                    + json.dumps({"out": {"text": "Rome"}, "meta": {"gold": {"answer": "Paris"}}}) + "\n"
                    + json.dumps({"out": {}, "meta": {"gold": {"answer": "Paris"}}}) + "\n")
    out = tmp_path / "out.jsonl"
    assert cli("batch", EXACT, str(data), "--out", str(out), "--quiet", "--details", "--sample-field", "out.text", "--item-field", "meta.gold")[0] == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["reward"] for line in lines] == [1.0, 0.0, 0.0]
    assert "--sample-field 'out.text' is missing" in lines[2]["details"]["error"] and "line 3" in lines[2]["details"]["error"]


def test_sample_field_alone_makes_the_row_the_item(tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps({"completion": "Paris", "answer": "Paris"}) + "\n")
    out = tmp_path / "out.jsonl"
    assert cli("batch", EXACT, str(data), "--out", str(out), "--quiet", "--sample-field", "completion")[0] == 0
    assert json.loads(out.read_text())["reward"] == 1.0


def test_item_from_builds_the_item_from_columns(tmp_path):
    grader = tmp_path / "g.json"
    grader.write_text(json.dumps({"type": "string_check", "name": "g", "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}-{{ item.meta.lang }}", "operation": "eq"}))
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps({"text": "Paris-fr", "answer": "Paris", "meta": {"lang": "fr"}, "noise": 1}) + "\n"
                    + json.dumps({"text": "Paris-fr", "answer": "Paris"}) + "\n")
    out = tmp_path / "out.jsonl"
    assert cli("batch", str(grader), str(data), "--out", str(out), "--quiet", "--details", "--sample-field", "text", "--item-from", "answer,meta.lang")[0] == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0]["reward"] == 1.0
    assert "--item-from column 'meta.lang' is missing" in lines[1]["details"]["error"]


def test_item_field_and_item_from_together_are_refused(tmp_path, capsys):
    data = tmp_path / "rows.jsonl"
    write_rows(data, 2)
    assert cli("batch", EXACT, str(data), "--item-field", "a", "--item-from", "b")[0] == 2
    assert "--item-field and --item-from" in capsys.readouterr().err


RFT_GRADER = {"type": "string_check", "name": "rft", "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}", "operation": "eq"}


def _rft_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    grader = tmp_path / "g.json"
    grader.write_text(json.dumps(RFT_GRADER))
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"}], "answer": f"a{i}", "id": i}) + "\n" for i in range(5)))
    return grader, train, tmp_path / "samples.jsonl"


def test_rft_rows_joined_with_samples_by_index(tmp_path):
    grader, train, samples = _rft_files(tmp_path)
    samples.write_text("".join(json.dumps(s) + "\n" for s in ["a0", {"model_sample": "a1"}, {"output_text": "a2"}, "wrong"]))
    out = tmp_path / "out.jsonl"
    assert cli("batch", str(grader), str(train), "--samples", str(samples), "--out", str(out), "--quiet", "--details", "--with-input")[0] == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["response"]["reward"] for line in lines] == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert "no samples entry" in lines[4]["response"]["details"]["error"]


def test_rft_item_is_the_normalised_training_row(tmp_path):
    grader = tmp_path / "g.json"
    grader.write_text(json.dumps({"type": "string_check", "name": "rft", "operation": "eq", "input": "{{ item.messages[0].name }}|{{ item.tools }}|{{ item.parallel_tool_calls }}|{{ item.answer }}", "reference": "null|null|true|a"}))
    train = tmp_path / "train.jsonl"
    train.write_text(json.dumps({"messages": [{"role": "user", "content": "q"}], "answer": "a"}) + "\n")
    samples = tmp_path / "s.jsonl"
    samples.write_text('"x"\n')
    out = tmp_path / "out.jsonl"
    assert cli("batch", str(grader), str(train), "--samples", str(samples), "--out", str(out), "--quiet")[0] == 0
    assert json.loads(out.read_text())["reward"] == 1.0


def test_rft_rows_joined_with_samples_by_id(tmp_path):
    grader, train, samples = _rft_files(tmp_path)
    samples.write_text("".join(json.dumps({"id": i, "model_sample": f"a{i}"}) + "\n" for i in (4, 2, 0, 1)))
    out = tmp_path / "out.jsonl"
    assert cli("batch", str(grader), str(train), "--samples", str(samples), "--join", "id", "--id-field", "id", "--out", str(out), "--quiet", "--compact")[0] == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(line["id"], line["reward"]) for line in lines] == [(0, 1.0), (1, 1.0), (2, 1.0), (3, 0.0), (4, 1.0)]


def test_compact_lines_hold_row_reward_flags_and_sub_rewards(tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps({"model_sample": "Paris", "item": {"answer": "Paris"}}) + "\n" + json.dumps({"model_sample": "Ottawa", "item": {}}) + "\n")
    out = tmp_path / "out.jsonl"
    assert cli("batch", MULTI, str(data), "--out", str(out), "--quiet", "--compact")[0] == 0
    first, second = [json.loads(line) for line in out.read_text().splitlines()]
    assert first == {"row": 0, "reward": pytest.approx(1.0), "sub_rewards": {"exact": 1.0, "mentions": 1.0, "apology": 0.0}}
    assert second["row"] == 1 and second["flags"] == ["invalid_variable_error"] and "exact" in second["sub_rewards"]


def test_with_input_lines_are_rescored_without_the_original_files(tmp_path):
    data = tmp_path / "rows.jsonl"
    write_rows(data, 50)
    out = tmp_path / "out.jsonl"
    assert cli("batch", EXACT, str(data), "--out", str(out), "--quiet", "--with-input", "--id-field", "id")[0] == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert list(lines[0]) == ["row", "id", "input", "response"] and lines[7]["id"] == "r7" and lines[7]["input"]["id"] == "r7"
    data.unlink()
    again = tmp_path / "again.jsonl"
    assert cli("rescore", str(out), MULTI, "--out", str(again), "--quiet")[0] == 0
    rescored = [json.loads(line) for line in again.read_text().splitlines()]
    direct = graders.compile(json.loads(Path(MULTI).read_text())).run_many([line["input"] for line in lines])
    assert [r["response"]["reward"] for r in rescored] == [d.reward for d in direct]
    assert [r["id"] for r in rescored] == [f"r{i}" for i in range(50)]
    assert cli("rescore", str(again), EXACT, "--out", str(tmp_path / "third.jsonl"), "--quiet", "--compact")[0] == 0


def test_rescore_refuses_output_without_input(tmp_path, capsys):
    data = tmp_path / "rows.jsonl"
    write_rows(data, 3)
    out = tmp_path / "out.jsonl"
    assert cli("batch", EXACT, str(data), "--out", str(out), "--quiet")[0] == 0
    assert cli("rescore", str(out), EXACT, "--out", str(tmp_path / "x.jsonl"))[0] == 2
    assert "not written with --with-input" in capsys.readouterr().err


def test_batch_writes_to_stdout_without_out(tmp_path):
    data = tmp_path / "rows.jsonl"
    write_rows(data, 5)
    code, text = cli("batch", EXACT, str(data), "--quiet")
    assert code == 0 and [json.loads(line)["reward"] for line in text.splitlines()] == [1.0, 0.0, 0.0, 0.0, 0.0]


# -- resume ---------------------------------------------------------------------------------------------------------


def test_kill_9_mid_file_then_the_same_command_gives_the_clean_run(tmp_path):
    data = tmp_path / "rows.jsonl"
    write_rows(data, 60000)
    clean, out = tmp_path / "clean.jsonl", tmp_path / "out.jsonl"
    args = [MULTI, str(data), "--workers", "2", "-o", "batch.block_bytes=4096"]
    subprocess.run(graders_cmd("batch", *args, "--out", str(clean), "--quiet"), check=True, cwd=ROOT)
    proc = subprocess.Popen(graders_cmd("batch", *args, "--out", str(out), "--quiet"), cwd=ROOT, start_new_session=True)
    deadline = time.monotonic() + 120
    while (not out.exists() or out.stat().st_size < 2_000_000) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = out.read_bytes().count(b"\n")
    assert 0 < partial < 60000, "the run was not killed in the middle"
    subprocess.run(graders_cmd("batch", *args, "--out", str(out), "--quiet"), check=True, cwd=ROOT)
    assert without_time(out.read_text().splitlines()) == without_time(clean.read_text().splitlines())
    assert json.loads((tmp_path / "out.jsonl.meta.json").read_text())["complete"] is True


def test_a_torn_last_line_is_redone(tmp_path):
    data = tmp_path / "rows.jsonl"
    write_rows(data, 30)
    out = tmp_path / "out.jsonl"
    assert cli("batch", MULTI, str(data), "--out", str(out), "--quiet")[0] == 0
    clean = out.read_text().splitlines()
    body = out.read_bytes()
    cut = body.rfind(b"\n", 0, len(body) - 1)
    out.write_bytes(body[: cut + 1 + 40])  # 29 whole lines and 40 bytes of the 30th
    assert cli("batch", MULTI, str(data), "--out", str(out), "--quiet")[0] == 0
    assert without_time(out.read_text().splitlines()) == without_time(clean)


def test_a_changed_grader_options_or_input_is_refused_and_force_starts_over(tmp_path, capsys):
    data = tmp_path / "rows.jsonl"
    write_rows(data, 10)
    out = tmp_path / "out.jsonl"
    assert cli("batch", EXACT, str(data), "--out", str(out), "--quiet")[0] == 0
    assert cli("batch", MULTI, str(data), "--out", str(out), "--quiet")[0] == 2
    assert "different grader" in capsys.readouterr().err
    assert cli("batch", EXACT, str(data), "--out", str(out), "--quiet", "-o", "string_check.ilike_fold=casefold")[0] == 2
    assert "different options" in capsys.readouterr().err
    assert cli("batch", EXACT, str(data), "--out", str(out), "--quiet", "--compact")[0] == 2
    assert "different layout (output)" in capsys.readouterr().err
    write_rows(data, 11)
    assert cli("batch", EXACT, str(data), "--out", str(out), "--quiet")[0] == 2
    assert "different input" in capsys.readouterr().err
    assert cli("batch", MULTI, str(data), "--out", str(out), "--quiet", "--force")[0] == 0
    assert len(out.read_text().splitlines()) == 11
    assert cli("batch", MULTI, str(data), "--out", str(out), "--quiet", "--workers", "2")[0] == 0  # workers never matter
    assert len(out.read_text().splitlines()) == 11


def test_an_output_without_its_sidecar_is_not_overwritten(tmp_path, capsys):
    data = tmp_path / "rows.jsonl"
    write_rows(data, 3)
    out = tmp_path / "out.jsonl"
    out.write_text("precious\n")
    assert cli("batch", EXACT, str(data), "--out", str(out))[0] == 2
    assert "has no out.jsonl.meta.json" in capsys.readouterr().err and out.read_text() == "precious\n"


def test_resume_by_id_grades_only_the_rows_not_written(tmp_path):
    data = tmp_path / "rows.jsonl"
    rows = write_rows(data, 40)
    out = tmp_path / "out.jsonl"
    assert cli("batch", EXACT, str(data), "--out", str(out), "--quiet", "--compact", "--id-field", "id")[0] == 0
    lines = out.read_text().splitlines(keepends=True)
    ids = (tmp_path / "out.jsonl.ids").read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:25]))
    (tmp_path / "out.jsonl.ids").write_text("".join(ids[:27]))  # the sidecar may run ahead; the shorter one wins
    data.write_text("".join(json.dumps(r) + "\n" for r in reversed(rows)))  # by id, the input may change order
    assert cli("batch", EXACT, str(data), "--out", str(out), "--quiet", "--compact", "--id-field", "id")[0] == 0
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(w["id"] for w in written) == sorted(r["id"] for r in rows)
    assert len((tmp_path / "out.jsonl.ids").read_text().splitlines()) == 40


def test_ctrl_c_keeps_the_rows_done_and_prints_their_summary(tmp_path):
    data = tmp_path / "rows.jsonl"
    write_rows(data, 60000)
    out = tmp_path / "out.jsonl"
    args = ["batch", MULTI, str(data), "--out", str(out), "--workers", "2", "--summary", str(tmp_path / "s.json"), "-o", "batch.block_bytes=4096"]
    proc = subprocess.Popen(graders_cmd(*args), cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while (not out.exists() or out.stat().st_size < 1_000_000) and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["interrupted"] is True and summary["rows"] == out.read_text().count("\n") > 0
    assert "[interrupted]" in err
    assert subprocess.run(graders_cmd(*args, "--quiet"), cwd=ROOT).returncode == 0
    assert len(out.read_text().splitlines()) == 60000


# -- progress, summary, report --------------------------------------------------------------------------------------


def test_progress_lines_when_not_a_terminal(tmp_path):
    data = tmp_path / "rows.jsonl"
    write_rows(data, 3000)
    proc = subprocess.run(graders_cmd("batch", MULTI, str(data), "--out", str(tmp_path / "o.jsonl"), "-o", "batch.progress_interval_s=0.001",
                                      "-o", "batch.block_bytes=2048"), cwd=ROOT, capture_output=True, text=True, check=True)
    lines = [line for line in proc.stderr.splitlines() if "rows/s, ETA" in line]
    assert lines and all(line.startswith("graders: ") and line.endswith(" errors") and "%" in line for line in lines)
    quiet = subprocess.run(graders_cmd("batch", MULTI, str(data), "--out", str(tmp_path / "q.jsonl"), "--quiet"), cwd=ROOT, capture_output=True, text=True, check=True)
    assert quiet.stderr == ""


def test_summary_numbers_match_a_hand_computation(tmp_path):
    data = tmp_path / "rows.jsonl"
    rows = write_rows(data, 500)
    rows[10]["item"] = {}
    rows[20]["item"] = {}
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = tmp_path / "s.json"
    assert cli("batch", MULTI, str(data), "--out", str(tmp_path / "o.jsonl"), "--quiet", "--summary", str(path), "--workers", "2", *SMALL)[0] == 0
    summary = json.loads(path.read_text())
    compiled = graders.compile(json.loads(Path(MULTI).read_text()))
    responses = [compiled.run(r["model_sample"], r["item"]) for r in rows]
    rewards = [r.reward for r in responses]
    assert summary["rows"] == 500 and summary["errors"] == 2
    for key, want in [("mean", statistics.fmean(rewards)), ("median", statistics.median(rewards)), ("min", min(rewards)),
                      ("max", max(rewards)), ("stdev", statistics.stdev(rewards))]:
        assert math.isclose(summary["reward"][key], want, rel_tol=1e-12, abs_tol=1e-15), key
    assert summary["flags"]["invalid_variable_error"]["count"] == 2
    assert summary["flags"]["invalid_variable_error"]["top_reasons"][0][1] == 2
    for key in ("exact", "mentions", "apology"):
        assert math.isclose(summary["sub_graders"][key]["mean"], statistics.fmean(r.sub_rewards[key] for r in responses), rel_tol=1e-12)
    assert summary["rows_per_s"] > 0 and summary["wall_time_s"] > 0


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _report(tmp_path: Path) -> Path:
    data = tmp_path / "rows.jsonl"
    rows = write_rows(data, 300)
    rows[5]["item"] = {}
    data.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken\n")
    report = tmp_path / "report.html"
    assert cli("batch", MULTI, str(data), "--out", str(tmp_path / "o.jsonl"), "--quiet", "--report", str(report), "--workers", "2", *SMALL)[0] == 0
    return report


def test_report_is_one_page_with_histogram_and_worst_rows(tmp_path):
    page = _report(tmp_path).read_text()
    parser = _Page()
    parser.feed(page)
    tags = parser.tags
    bars = [a for t, a in tags if t == "rect" and a.get("class") == "bar"]
    assert any(t == "svg" and a.get("aria-label") == "reward histogram" for t, a in tags)
    assert sum(int(a["data-count"]) for a in bars[:20]) == 301
    worst = [a for t, a in tags if t == "details" and a.get("class") == "row worst"]
    errored = [a for t, a in tags if t == "details" and a.get("class") == "row errored"]
    assert len(worst) == 25 and {a["data-row"] for a in errored} == {"5", "300"}
    assert "rendered templates" in page and "sub-graders" in page.lower()
    assert not any(a.get("src") or (a.get("href") or "").startswith("http") for _, a in tags)


def test_report_opens_in_headless_chromium_without_console_errors(tmp_path):
    from browser import console_problems, start_browser
    from selenium.webdriver.common.by import By

    report = _report(tmp_path)
    driver = start_browser(tmp_path / "profile", width=1100, height=1400)
    try:
        driver.get(report.as_uri())
        driver.save_screenshot(str(tmp_path / "report.png"))
        assert driver.find_element(By.CSS_SELECTOR, "svg.histogram rect.bar")
        driver.find_element(By.ID, "expand").click()
        assert all(d.get_attribute("open") for d in driver.find_elements(By.CSS_SELECTOR, "details.row"))
        box = driver.find_element(By.ID, "filter")
        box.send_keys("invalid_variable_error")
        shown = [d for d in driver.find_elements(By.CSS_SELECTOR, "details.row") if d.is_displayed()]
        assert shown and all("invalid_variable_error" in d.text for d in shown)
        assert console_problems(driver) == []
    finally:
        driver.quit()
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_a_forced_bar_shows_rows_per_second_and_errors(tmp_path):
    data = tmp_path / "rows.jsonl"
    write_rows(data, 3000)
    proc = subprocess.run(graders_cmd("batch", MULTI, str(data), "--out", str(tmp_path / "o.jsonl"), "--progress", "bar", "-o", "batch.block_bytes=2048"),
                          cwd=ROOT, capture_output=True, check=True)
    assert b"rows/s" in proc.stderr and b"0 errors" in proc.stderr and b"\r" in proc.stderr and b"100%" in proc.stderr


def test_stdin_input_is_graded_and_never_resumed(tmp_path):
    data = tmp_path / "rows.jsonl"
    write_rows(data, 20)
    out = tmp_path / "o.jsonl"
    cmd = graders_cmd("batch", EXACT, "-", "--out", str(out), "--quiet")
    assert subprocess.run(cmd, cwd=ROOT, input=data.read_bytes(), capture_output=True).returncode == 0
    assert len(out.read_text().splitlines()) == 20
    again = subprocess.run(cmd, cwd=ROOT, input=data.read_text(), capture_output=True, text=True)
    assert again.returncode == 2 and "stdin, which cannot be resumed" in again.stderr


def test_zero_workers_is_refused_naming_the_option(tmp_path, capsys):
    data = tmp_path / "rows.jsonl"
    write_rows(data, 2)
    assert cli("batch", EXACT, str(data), "--workers", "0")[0] == 2
    assert "workers must be at least 1" in capsys.readouterr().err


def test_model_graders_share_one_limiter_on_the_parent(tmp_path):
    from servers.chat_server import RunningServer

    judge = {"type": "score_model", "name": "judge", "model": "m1",
             "input": [{"role": "user", "content": "Answer: {{ sample.output_text }} #script {{ item.script }}"}]}
    grader = tmp_path / "g.json"
    grader.write_text(json.dumps({"type": "multi", "name": "mixed", "graders": {"judge": judge, "exact": json.loads(Path(EXACT).read_text())},
                                  "calculate_output": "judge + exact"}))
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"model_sample": "Paris", "item": {"answer": "Paris", "script": {"result": 0.5}}}) + "\n" for _ in range(120)))
    with RunningServer("--latency", "0.02") as server:
        code, _ = cli("batch", str(grader), str(data), "--out", str(tmp_path / "o.jsonl"), "--quiet", "--workers", "2", "--summary", str(tmp_path / "s.json"),
                      "-o", f"models.base_url={server.base_url}", "-o", "models.max_concurrency=3", "-o", "batch.parallel_min_rows=1", "-o", "batch.block_bytes=1024")
        stats = server.stats()
    assert code == 0 and stats["requests"] == 120 and stats["max_in_flight"] == 3
    assert [json.loads(line)["reward"] for line in (tmp_path / "o.jsonl").read_text().splitlines()] == [1.5] * 120
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["token_usage"] and all(u["total_tokens"] > 0 for u in summary["token_usage"].values())


def test_a_shard_that_dies_is_replaced_and_its_blocks_graded_again():
    compiled = graders.compile(json.loads(Path(MULTI).read_text()), graders.Options().with_values({"batch.parallel_min_rows": 10, "batch.block_rows": 50, "batch.shard_min_row_us": 0}))
    rows = [{"model_sample": ANSWERS[i % 5], "item": {"answer": "Paris"}} for i in range(20000)]
    it = compiled.iter_run(rows, workers=2)
    got = [next(it).reward for _ in range(100)]
    victim = next(p for p in multiprocessing.active_children() if p.name.startswith("graders-shard"))
    os.kill(victim.pid, signal.SIGKILL)
    got += [r.reward for r in it]
    assert got == [r.reward for r in compiled.run_many(rows, workers=1)]


def test_a_hole_left_by_a_crash_ends_what_is_kept(tmp_path):
    """Shards write blocks at their offsets, so a crash can leave zeros before the last block written."""
    data = tmp_path / "rows.jsonl"
    write_rows(data, 40)
    out = tmp_path / "out.jsonl"
    assert cli("batch", MULTI, str(data), "--out", str(out), "--quiet")[0] == 0
    clean = out.read_text().splitlines()
    body = bytearray(out.read_bytes())
    start = sum(len(line) + 1 for line in clean[:10]) + 5
    body[start:start + 3000] = bytes(3000)
    out.write_bytes(bytes(body))
    assert cli("batch", MULTI, str(data), "--out", str(out), "--quiet")[0] == 0
    assert without_time(out.read_text().splitlines()) == without_time(clean)
