"""The playground's server side: its routes behind the server's guard, the packaged examples, the batch-output
index that serves a page of rows at a time, and `graders ui` (real server processes on 127.0.0.1)."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graders
from graders.options import option_kind
from graders.response import ERROR_KEYS
from graders.server.playground import examples
from graders.server.request_options import SCORING_OPTIONS
from graders.server import rowfile as rowfile_module
from graders.server.rowfile import BINS, RowFile, RowFileError, histogram_bins
from servers.graders_server import GradersServer, PlaygroundServer

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
PACKAGED = ROOT / "graders" / "server" / "examples"
STATIC = ROOT / "graders" / "server" / "static"
EXACT = {"type": "string_check", "name": "exact", "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}", "operation": "eq"}
MULTI = json.loads((FIXTURES / "graders" / "answer_checks_multi.json").read_text())
FUZZY = json.loads((FIXTURES / "graders" / "fuzzy_answer.json").read_text())


@pytest.fixture(scope="module")
def ui() -> Any:
    with PlaygroundServer() as srv:
        yield srv


# -- the packaged examples -------------------------------------------------------------------------------------


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_packaged_examples_equal_the_fixtures():
    """fixtures/ is not installed with the package, so the playground ships a copy; it must stay the same files."""
    wanted = {f"{sub}/{name}": data for sub in ("graders", "data", "playground") for name, data in _tree(FIXTURES / sub).items()}
    packaged = _tree(PACKAGED)
    fix = "cp -r fixtures/graders fixtures/data fixtures/playground graders/server/examples/"
    assert sorted(packaged) == sorted(wanted), f"the packaged examples differ from fixtures/; run: rm -r graders/server/examples/* && {fix}"
    assert [k for k in wanted if packaged[k] != wanted[k]] == [], f"run: {fix}"


def test_every_example_grades_its_sample_and_every_broken_one_names_its_param():
    found = examples()
    good = [e for e in found["graders"] if e["group"] == "graders"]
    broken = [e for e in found["graders"] if e["group"] == "invalid"]
    assert {e["name"] for e in good} >= {"answer_checks_multi.json", "exact_answer.json", "fuzzy_answer.json", "tool_call_name.json", "python_word_budget.json"}
    for example in good:
        response = graders.run(json.loads(example["text"]), example.get("model_sample"), example.get("item"), sample=example.get("sample"))
        assert not response.failed, (example["name"], response)
    assert len(broken) == 7
    for example in broken:
        with pytest.raises(graders.GraderValidationError) as caught:
            graders.validate(json.loads(example["text"]))
        assert caught.value.param == example["param"]
    assert found["rows"][0]["name"] == "capitals.jsonl" and found["rows"][0]["text"].count("\n") == 5


# -- the page ---------------------------------------------------------------------------------------------------


def test_the_page_and_its_assets_come_from_the_package_with_a_strict_policy(ui):
    page = httpx.get(ui.root + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
    links = re.findall(r'(?:src|href)="([^"#]+)"', page.text)
    assert links and all(link.startswith("/playground/static/") for link in links), links
    for link in links:
        asset = httpx.get(ui.root + link)
        assert asset.status_code == 200 and asset.content == (STATIC / link.rsplit("/", 1)[1]).read_bytes()
    for name in ("index.html", "playground.js", "playground.css"):
        urls = set(re.findall(r"https?://[^\s\"')]+", (STATIC / name).read_text()))
        assert urls <= {"http://www.w3.org/2000/svg"}, (name, urls)  # an SVG namespace, never fetched
    with_key = {"Authorization": f"Bearer {ui.key}"}
    for other in ("/playground/static/app.py", "/playground/static/../app.py", "/playground/static/"):
        assert httpx.get(ui.root + other, headers=with_key).status_code == 404  # only the listed assets are served


def test_the_page_needs_no_key_but_every_playground_route_does(ui):
    assert httpx.get(ui.root + "/").status_code == 200
    for path in ("/playground/info", "/playground/run", "/playground/validate", "/playground/grade", "/playground/file/page"):
        refused = ui.post(path, {}, key=False)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key", path
    assert ui.post("/", {}, key=False).status_code == 401  # the page is public to GET only


def test_playground_routes_pass_the_same_guard_as_run(ui):
    headers = {"Authorization": f"Bearer {ui.key}"}
    text = httpx.post(ui.root + "/playground/info", content=b"{}", headers={**headers, "content-type": "text/plain"})
    assert text.status_code == 415
    evil = httpx.post(ui.root + "/playground/run", content=b"{}", headers={**headers, "content-type": "application/json", "host": "evil.example:80"})
    assert evil.status_code == 403 and evil.json()["error"]["code"] == "host_not_allowed"
    assert "access-control-allow-origin" not in {k.lower() for k in ui.post("/playground/info", {}).headers}


def test_the_body_limit_covers_pasted_rows():
    with PlaygroundServer("--max-body-bytes", "4000") as srv:
        rows = [{"model_sample": "Paris " * 20, "item": {"answer": "Paris"}}] * 40
        refused = srv.post("/playground/grade", {"grader": EXACT, "rows": rows})
        assert refused.status_code == 413 and refused.json()["error"]["code"] == "request_too_large"
        assert srv.post("/playground/info", {}).json()["max_body_bytes"] == 4000


def test_requests_in_flight_are_bounded_on_playground_routes_too():
    slow = {"type": "python", "name": "slow", "source": "import time\ndef grade(sample, item):\n    time.sleep(3)\n    return 1.0\n"}
    with GradersServer("--max-in-flight", "1", "--api-key", "k") as srv:
        headers = {"Authorization": "Bearer k"}
        first: dict[str, Any] = {}

        def slow_run() -> None:  # retried while one of the probes below holds the only slot
            while (answer := srv.post("/playground/run", {"grader": slow, "model_sample": "x"}, headers=headers)).status_code == 429:
                time.sleep(0.01)
            first["r"] = answer

        thread = threading.Thread(target=slow_run)
        thread.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and thread.is_alive():
            second = srv.post("/playground/info", {}, headers=headers)
            if second.status_code == 429:
                break
            time.sleep(0.05)
        thread.join()
        assert second.status_code == 429 and second.headers["retry-after"] == "1"
        assert first["r"].json()["reward"] == 1.0


def test_graders_serve_serves_the_playground_at_the_root():
    with GradersServer() as srv:
        page = httpx.get(srv.root + "/")
        assert page.status_code == 200 and "graders playground" in page.text
        assert srv.post("/playground/info", {}).json()["opened_graders"] == []


# -- one sample ----------------------------------------------------------------------------------------------


def test_playground_run_answers_the_wire_response_plus_details_with_explain_on(ui):
    answer = ui.post("/playground/run", {"grader": MULTI, "model_sample": "The capital is paris.", "item": {"answer": "Paris"}}).json()
    assert list(answer) == ["reward", "metadata", "sub_rewards", "model_grader_token_usage_per_model", "details"]
    assert list(answer["metadata"]["errors"]) == list(ERROR_KEYS)
    assert answer["reward"] == pytest.approx(0.4)
    subs = answer["details"]["sub_graders"]
    assert subs["exact"] == {"reward": 0.0, "input": "The capital is paris.", "reference": "Paris", "operation": "eq"}
    plain = ui.post("/v1/fine_tuning/alpha/graders/run", {"grader": MULTI, "model_sample": "The capital is paris.", "item": {"answer": "Paris"}}).json()
    assert "details" not in plain and plain["reward"] == answer["reward"]


def test_playground_run_switches_scoring_options_and_refuses_every_other(ui):
    body = {"grader": FUZZY, "model_sample": "The capital of France is Paris.", "item": {"answer": "Paris, France"}}
    default = ui.post("/playground/run", body).json()
    wratio = ui.post("/playground/run", {**body, "options": {"text_similarity.fuzzy_match.scorer": "wratio_dp"}}).json()
    assert default["reward"] == pytest.approx(0.40909, abs=1e-5) and wratio["reward"] == pytest.approx(0.855)
    assert wratio["details"]["metric"]["scorer"] == "WRatio"
    for name, value in (("python.isolation", "landlock"), ("python.timeout_s", 1), ("models.base_url", "http://x"), ("explain", False)):
        refused = ui.post("/playground/run", {**body, "options": {name: value}})
        assert refused.status_code == 200 and refused.json()["error"]["param"] == f"options.{name}", name


def test_playground_validate_and_run_answer_an_invalid_grader_as_its_envelope(ui):
    bad = {**EXACT, "operation": "contains"}
    for path in ("/playground/validate", "/playground/run"):
        answer = ui.post(path, {"grader": bad, "model_sample": "x"})
        assert answer.status_code == 200
        assert answer.json()["error"]["param"] == "operation" and answer.json()["error"]["code"] == "invalid_value"
    bad_item = ui.post("/playground/run", {"grader": EXACT, "model_sample": "x", "item": "Paris"}).json()
    assert bad_item["error"]["param"] == "item"
    assert ui.post("/playground/validate", {"grader": EXACT}).json()["grader"]["name"] == "exact"


def test_playground_info_lists_exactly_the_scoring_options_with_their_values(ui):
    info = ui.post("/playground/info", {}).json()
    options = {o["name"]: o for o in info["scoring_options"]}
    assert set(options) == set(SCORING_OPTIONS)
    scorer = options["text_similarity.fuzzy_match.scorer"]
    assert scorer["kind"] == "enum" and "ratio" in scorer["choices"] and scorer["value"] == "ratio"
    assert scorer["description"].startswith("U19")
    assert info["python_graders"] in ("full isolation", "refused") and info["max_body_bytes"] == 16 * 1024 * 1024
    assert info["flags"][0] == "formula_parse_error" and "invalid_variable_error" in info["flags"]


def test_option_kind_describes_what_a_form_can_offer():
    assert option_kind("text_similarity.fuzzy_match.scorer")["choices"][0] == "ratio"
    assert option_kind("template.null_is_missing") == {"kind": "bool"}
    assert option_kind("formula.minmax_min_args") == {"kind": "integer"}
    assert option_kind("evals.default_pass_threshold") == {"kind": "number", "nullable": True}
    assert option_kind("sample.extra_keys") == {"kind": "json"}


# -- many samples ----------------------------------------------------------------------------------------------


def test_playground_grade_answers_compact_results_in_order_and_a_bad_row_costs_only_itself(ui):
    rows = [{"model_sample": "Paris", "item": {"answer": "Paris"}}, 5, {"model_sample": "Rome", "item": {}}, "Paris"]
    results = ui.post("/playground/grade", {"grader": EXACT, "rows": rows}).json()["results"]
    assert [r["reward"] for r in results] == [1.0, 0.0, 0.0, 0.0]
    assert results[0] == {"reward": 1.0, "flags": []}
    assert results[1]["flags"] == ["other_error"] and "invalid row" in results[1]["error"]
    assert results[2]["flags"] == ["invalid_variable_error"] and "item.answer" in results[2]["error"]
    multi = ui.post("/playground/grade", {"grader": MULTI, "rows": rows[:1]}).json()["results"][0]
    assert multi["sub_rewards"] == {"exact": 1.0, "mentions": 1.0, "apology": 0.0}
    assert ui.post("/playground/grade", {"grader": EXACT}).json()["error"]["param"] == "rows"
    assert ui.post("/playground/grade", {"grader": EXACT, "rows": {}}).json()["error"]["param"] == "rows"


# -- batch outputs -----------------------------------------------------------------------------------------------


def _wire(grader: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    return graders.run(grader, row.get("model_sample"), row.get("item")).model_dump()


def _rows(n: int) -> list[dict[str, Any]]:
    """Every 5th row has no answer (invalid_variable_error); every 3rd answers in lower case."""
    out = []
    for i in range(n):
        if i % 5 == 4:
            out.append({"model_sample": f"guess {i}", "item": {}})
        else:
            out.append({"model_sample": "paris" if i % 3 == 0 else "Paris", "item": {"answer": "Paris"}})
    return out


def _write(path: Path, lines: list[Any], *, blank_every: int = 0) -> Path:
    with path.open("w") as handle:
        for i, line in enumerate(lines):
            handle.write(json.dumps(line) + "\n")
            if blank_every and i % blank_every == 0:
                handle.write("\n")
    return path


def _with_input(path: Path, rows: list[dict[str, Any]], grader: dict[str, Any] = EXACT) -> Path:
    return _write(path, [{"row": i, "id": None, "input": r, "response": _wire(grader, r)} for i, r in enumerate(rows)], blank_every=7)


def test_a_file_is_indexed_lazily_and_blank_lines_are_not_rows(tmp_path):
    path = _with_input(tmp_path / "out.jsonl", _rows(30))
    with path.open("a") as handle:
        handle.write(json.dumps({"row": 30, "id": None, "input": {"model_sample": "Paris", "item": {"answer": "Paris"}}, "response": _wire(EXACT, {"model_sample": "Paris", "item": {"answer": "Paris"}})}))
    rowfile = RowFile(str(path), "0")
    assert rowfile.kind == "with_input" and rowfile._starts is None  # opening reads one line
    page = rowfile.page(28, 10)
    assert rowfile._rewards is None  # a plain page reads only its lines
    assert page["total"] == 31 and [r["row"] for r in page["rows"]] == [28, 29, 30]
    assert page["rows"][2] == {"row": 30, "sample": "Paris", "id": None, "reward": 1.0, "flags": [], "sub_rewards": {}, "error": None}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.binary(max_size=80).map(lambda b: bytes(b"ab \t\n\r\x0b\x0c"[x % 8] for x in b)), block=st.integers(1, 9))
def test_the_index_skips_exactly_the_lines_bytes_strip_calls_blank(tmp_path, monkeypatch, text, block):
    """Blank lines are not rows, across block boundaries too: the index agrees with `bytes.strip` line by line."""
    monkeypatch.setattr(rowfile_module, "BLOCK", block)
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b"{}\n" + text)
    expected, at = [], 0
    for line in path.read_bytes().split(b"\n"):
        if line.strip():
            expected.append((at, at + len(line)))
        at += len(line) + 1
    starts, ends = RowFile(str(path), "0")._index()
    assert list(zip(starts.tolist(), ends.tolist())) == expected


def test_a_file_filters_by_flag_sorts_by_reward_and_selects_a_histogram_bin(tmp_path):
    rows = _rows(100)
    rowfile = RowFile(str(_with_input(tmp_path / "out.jsonl", rows)), "0")
    errored = rowfile.page(0, 200, flag="invalid_variable_error")
    assert errored["total"] == 20 and all(r["flags"] == ["invalid_variable_error"] and "item.answer" in r["error"] for r in errored["rows"])
    assert rowfile.page(0, 200, flag="none")["total"] == 80
    ordered = rowfile.page(0, 200, sort="-reward")["rows"]
    assert [r["reward"] for r in ordered] == sorted((r["reward"] for r in ordered), reverse=True)
    expected_ones = sum(1 for i in range(100) if i % 5 != 4 and i % 3 != 0)
    summary = rowfile.summary()
    assert summary["a"]["histogram"]["counts"][BINS - 1] == expected_ones and sum(summary["a"]["histogram"]["counts"]) == 100
    assert summary["a"]["flags"] == {"invalid_variable_error": 20} and summary["a"]["mean"] == pytest.approx(expected_ones / 100)
    assert rowfile.page(0, 200, bin_index=BINS - 1)["total"] == expected_ones
    with pytest.raises(RowFileError):
        rowfile.page(0, 10, sort="-change")  # nothing to compare with yet


def test_a_regrade_compares_every_row_with_what_the_file_recorded(tmp_path):
    rows = _rows(60)
    rowfile = RowFile(str(_with_input(tmp_path / "out.jsonl", rows)), "0")
    with graders.compile({**EXACT, "operation": "ilike"}) as compiled:
        rowfile.regrade(compiled, "ilike", lambda: False)
    changed = [i for i in range(60) if i % 5 != 4 and i % 3 == 0]
    summary = rowfile.summary(use_b=True)
    assert summary["changed"] == len(changed) and summary["max_change"] == 1.0
    page = rowfile.page(0, 200, sort="-change", changed=True, use_b=True)
    assert sorted(r["row"] for r in page["rows"]) == changed
    assert all(r["reward"] == 0.0 and r["reward_b"] == 1.0 for r in page["rows"])
    assert rowfile.line(changed[0])["reward_b"] == 1.0 and rowfile.regraded("ilike") and not rowfile.regraded("other")


def test_a_wire_output_cannot_be_regraded_but_rows_and_compact_lines_open(tmp_path):
    rows = _rows(10)
    wire = RowFile(str(_write(tmp_path / "wire.jsonl", [_wire(EXACT, r) for r in rows])), "0")
    assert wire.kind == "wire" and wire.page(0, 3)["rows"][0]["reward"] == 0.0
    with graders.compile(EXACT) as compiled, pytest.raises(RowFileError, match="--with-input"):
        wire.regrade(compiled, "k", lambda: False)
    compact = RowFile(str(_write(tmp_path / "compact.jsonl", [{"row": i, "reward": 0.5, "flags": ["other_error"] if i == 2 else []} for i in range(5)])), "1")
    assert compact.kind == "compact" and compact.summary()["a"]["flags"] == {"other_error": 1}
    plain = RowFile(str(_write(tmp_path / "rows.jsonl", rows)), "2")
    assert plain.kind == "rows" and plain.page(0, 2)["rows"][0] == {"row": 0, "sample": "paris"}
    with graders.compile(EXACT) as compiled:
        plain.regrade(compiled, "k", lambda: False)
    assert plain.summary(use_b=True)["b"]["flags"] == {"invalid_variable_error": 2} and "a" not in plain.summary(use_b=True)


def test_an_unreadable_line_is_shown_as_such_and_costs_only_its_row(tmp_path):
    path = _with_input(tmp_path / "out.jsonl", _rows(5))
    with path.open("a") as handle:
        handle.write("{not json\n")
    rowfile = RowFile(str(path), "0")
    assert rowfile.summary()["a"]["flags"] == {"invalid_variable_error": 1, "unreadable_line": 1}
    assert rowfile.page(5, 1)["rows"][0]["flags"] == ["unreadable_line"]
    assert "not valid JSON" in rowfile.line(5)["problem"]
    with pytest.raises(RowFileError, match="no row 6"):
        rowfile.line(6)


def test_a_real_batch_output_is_read_with_the_layout_its_sidecar_records(tmp_path):
    """`graders batch --with-input --sample-field` writes the rows as read; re-grading maps them as rescore would."""
    from graders.cli import main

    data = _write(tmp_path / "rows.jsonl", [{"out": {"text": "paris" if i % 2 else "Paris"}, "answer": "Paris"} for i in range(20)])
    grader = tmp_path / "exact.json"
    grader.write_text(json.dumps(EXACT))
    with_input, wire = tmp_path / "with_input.jsonl", tmp_path / "wire.jsonl"
    assert main(["batch", str(grader), str(data), "--out", str(with_input), "--with-input", "--sample-field", "out.text", "--quiet"]) == 0
    assert main(["batch", str(grader), str(data), "--out", str(wire), "--sample-field", "out.text", "--quiet"]) == 0
    rowfile = RowFile(str(with_input), "0")
    assert rowfile.kind == "with_input" and rowfile.summary()["a"]["mean"] == 0.5
    assert rowfile.page(0, 2)["rows"][1]["sample"] == "paris"
    assert rowfile.line(1)["input"] == {"model_sample": "paris", "item": {"out": {"text": "paris"}, "answer": "Paris"}}
    with graders.compile({**EXACT, "operation": "ilike"}) as compiled:
        rowfile.regrade(compiled, "ilike", lambda: False)
    assert rowfile.summary(use_b=True)["changed"] == 10
    assert RowFile(str(wire), "1").kind == "wire" and not RowFile(str(wire), "1").has_inputs


def test_histogram_bins_put_the_top_edge_in_the_last_bin_and_widen_past_one():
    bins = histogram_bins(np.array([0.0, 0.05, 0.5, 1.0, np.nan]))
    assert bins.tolist() == [0, 1, 10, BINS - 1, -1]
    assert histogram_bins(np.array([-1.0, 3.0])).tolist() == [0, BINS - 1]


def test_file_routes_serve_pages_rows_and_regrades_through_the_server(tmp_path):
    path = _with_input(tmp_path / "out.jsonl", _rows(40))
    with PlaygroundServer(str(path)) as srv:
        files = srv.post("/playground/info", {}).json()["files"]
        assert files == [{"file": "0", "name": "out.jsonl", "kind": "with_input", "bytes": path.stat().st_size, "has_inputs": True, "recorded": True}]
        page = srv.post("/playground/file/page", {"file": "0", "start": 0, "count": 5, "flag": "invalid_variable_error"}).json()
        assert page["total"] == 8 and len(page["rows"]) == 5
        row = srv.post("/playground/file/row", {"file": "0", "row": 4}).json()
        assert row["input"] == {"model_sample": "guess 4", "item": {}} and row["line"]["response"]["reward"] == 0.0
        summary = srv.post("/playground/file/regrade", {"file": "0", "grader": {**EXACT, "operation": "ilike"}}).json()
        assert summary["changed"] == sum(1 for i in range(40) if i % 5 != 4 and i % 3 == 0)
        assert srv.post("/playground/file/page", {"file": "0", "sort": "sideways"}).json()["error"]["param"] == "sort"
        assert srv.post("/playground/file/page", {"file": "9"}).json()["error"]["param"] == "file"
        assert srv.post("/playground/file/page", {"file": "0", "count": -1}).json()["error"]["param"] == "count"
        assert srv.post("/playground/file/page", {"file": "0", "flag": "bogus"}).json()["error"]["param"] == "flag"
        big = srv.post("/playground/file/page", {"file": "0", "count": 10_000}).json()
        assert len(big["rows"]) == 40  # at most MAX_PAGE rows per request


# -- graders ui -------------------------------------------------------------------------------------------------


def test_ui_prints_a_loopback_url_with_a_fresh_key_and_offers_the_grader_it_was_given(tmp_path):
    grader = tmp_path / "mine.json"
    grader.write_text(json.dumps(EXACT, indent=4))
    with PlaygroundServer(str(grader)) as one, PlaygroundServer() as two:
        assert one.root.startswith("http://127.0.0.1:") and one.key != two.key and len(one.key) >= 32
        assert one.post("/playground/info", {}).json()["opened_graders"] == [{"name": "mine.json", "text": grader.read_text()}]
        assert two.post("/playground/info", {}, headers={"Authorization": f"Bearer {one.key}"}).status_code == 401


def test_ui_opens_the_url_in_a_browser_when_there_is_one(tmp_path):
    seen = tmp_path / "seen.txt"
    script = tmp_path / "fake-browser"
    script.write_text(f"#!/bin/sh\necho \"$1\" > {seen}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    with PlaygroundServer(env={"BROWSER": str(script)}, no_browser=False) as srv:
        deadline = time.monotonic() + 10
        while not seen.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert seen.read_text().strip() == srv.url


@pytest.mark.parametrize("browser", ["missing", "w3m"], ids=["no-browser", "text-mode-browser"])
def test_ui_without_a_graphical_browser_still_serves_and_says_so(tmp_path, browser):
    """No browser, or only one that would take over the terminal (never opened): the URL is printed, the server runs."""
    command = str(tmp_path / "no-such-browser") if browser == "missing" else browser
    with PlaygroundServer(env={"BROWSER": command, "DISPLAY": ""}, no_browser=False) as srv:
        deadline = time.monotonic() + 10
        while "no browser" not in srv.stderr() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "no browser to open here" in srv.stderr()
        assert httpx.get(srv.root + "/").status_code == 200


@pytest.mark.parametrize(
    ("content", "said"),
    [(None, "No such file"), ("{not json", "is not JSON"), ("[1, 2]", "must hold a grader")],
    ids=["missing", "not-json", "not-an-object"],
)
@pytest.mark.parametrize("how", ["command", "python -m"])
def test_ui_refuses_a_file_it_cannot_use_in_one_line(tmp_path, content, said, how):
    path = tmp_path / "grader.json"
    if content is not None:
        path.write_text(content)
    command = [str(Path(sys.executable).with_name("graders"))] if how == "command" else [sys.executable, "-m", "graders.cli"]
    proc = subprocess.run([*command, "ui", "--no-browser", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and said in proc.stderr and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


@pytest.mark.parametrize("port", ["99999999", "-1", "http"])
def test_a_port_that_is_not_one_is_a_usage_error(port):
    proc = subprocess.run([sys.executable, "-m", "graders.cli", "serve", "--port", port], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "argument --port" in proc.stderr and "Traceback" not in proc.stderr
