"""The playground driven in a real headless chromium (Debian's, through chromium-driver and Selenium), against a
real `graders ui` process: one browser session for the whole module, no console error or warning after any test.

Set GRADERS_SCREENSHOTS=docs/images to refresh the README's screenshots from these tests.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

import graders
from browser import console_problems, require_browser, start_browser
from servers.chat_server import RunningServer
from servers.graders_server import GradersServer, PlaygroundServer

require_browser()

from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.select import Select  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXACT = json.loads((ROOT / "fixtures" / "graders" / "exact_answer.json").read_text())
BIG_ROWS = 100_000


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wanted = os.environ.get("GRADERS_SCREENSHOTS")
    folder = (ROOT / wanted) if wanted else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory, downloads: Path) -> Any:
    drv = start_browser(tmp_path_factory.mktemp("profile"), width=1280, height=1000, downloads=downloads)
    try:
        yield drv
    finally:
        drv.quit()


@pytest.fixture(scope="module")
def big_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `graders batch` output of 100,000 wire responses: rewards spread over [0, 1], every 10th row flagged."""
    good = graders.run(EXACT, "Paris", {"answer": "Paris"}).model_dump()
    bad = graders.run(EXACT, "Paris", {}).model_dump()
    good_text, bad_text = json.dumps(good), json.dumps(bad)
    path = tmp_path_factory.mktemp("big") / "out.jsonl"
    with path.open("w") as handle:
        for i in range(BIG_ROWS):
            if i % 10 == 9:
                handle.write(bad_text + "\n")
            else:
                handle.write(good_text.replace('"reward": 1.0', f'"reward": {(i * 7919 % 1000) / 1000!r}', 1) + "\n")
    return path


@pytest.fixture(scope="module")
def ui() -> Any:
    """The playground with its judge pointed at the scripted chat server (tests/servers/chat_server.py)."""
    with RunningServer() as chat, PlaygroundServer("-o", f"models.base_url={chat.base_url}", "-o", "models.max_retries=0") as srv:
        yield srv


@pytest.fixture(scope="module")
def big_ui(big_output: Path) -> Any:
    with PlaygroundServer(str(big_output)) as srv:
        yield srv


@pytest.fixture(autouse=True)
def no_console_problems(driver: Any) -> Any:
    console_problems(driver)
    yield
    assert console_problems(driver) == []


def wait(driver: Any, condition: Any, timeout: float = 15) -> Any:
    """Until `condition(driver)` holds; an element replaced while it is read (the page re-renders) is read again."""
    ignored = (StaleElementReferenceException, NoSuchElementException)
    return WebDriverWait(driver, timeout, poll_frequency=0.05, ignored_exceptions=ignored).until(lambda d: condition(d))


def css(driver: Any, selector: str) -> Any:
    return driver.find_element(By.CSS_SELECTOR, selector)


def open_page(driver: Any, ui: PlaygroundServer) -> None:
    driver.set_window_size(1280, 1000)
    driver.get(ui.url)
    wait(driver, lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))
    css(driver, "#tab-edit").click()


def load_example(driver: Any, name: str) -> None:
    button = css(driver, f'button[data-example="{name}"]')
    if not button.is_displayed():  # the broken examples are folded away
        css(driver, "details.broken summary").click()
    button.click()
    wait(driver, lambda d: "Valid" in css(d, "#grader-status").text or "✗" in css(d, "#grader-status").text)


def run_and_read(driver: Any, previous: str | None = None) -> float:
    """Press Ctrl+Enter and read the reward once a new result is on the page."""
    driver.execute_script("const r = document.querySelector('#result .response'); if (r) r.dataset.seen = 'yes'")
    ActionChains(driver).key_down(Keys.CONTROL).send_keys(Keys.ENTER).key_up(Keys.CONTROL).perform()
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#result .response:not([data-seen])"))
    return float(css(driver, "#result .reward").text)


def reward_text_changes(driver: Any, before: str) -> float:
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#result .reward") and css(d, "#result .reward").text != before)
    return float(css(driver, "#result .reward").text)


def tall_screenshot(driver: Any, path: Path) -> None:
    """A screenshot of the top of the page in a window tall enough to show the rows table."""
    driver.set_window_size(1280, 1500)
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(str(path))
    driver.set_window_size(1280, 1000)


def type_into(driver: Any, element_id: str, text: str) -> None:
    area = css(driver, f"#{element_id}")
    area.click()
    area.send_keys(Keys.CONTROL, "a")
    area.send_keys(Keys.DELETE)
    driver.execute_script("arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'))", area, text[:-1])
    area.send_keys(text[-1])  # the last keystroke is typed, so the page sees a real edit


def test_load_an_example_run_it_and_read_the_reward_and_rendered_templates(driver, ui, shots):
    open_page(driver, ui)
    load_example(driver, "answer_checks_multi.json")
    assert run_and_read(driver) == pytest.approx(0.4)
    exact = css(driver, '#result .sub-grader[data-key="exact"]')
    assert exact.find_element(By.CSS_SELECTOR, ".sub-reward").text == "0"
    assert exact.find_element(By.CSS_SELECTOR, '.template[data-key="input"]').text == "The capital is paris."
    assert exact.find_element(By.CSS_SELECTOR, '.template[data-key="reference"]').text == "Paris"
    formula = css(driver, "#result .formula .substituted").text
    assert formula == "= 0.6 * 0 + 0.3 * 1 + 0.1 * (1 - 0) = 0.4"
    driver.save_screenshot(str(shots / "playground-run.png"))


def test_an_invalid_edit_marks_the_param_the_error_names(driver, ui):
    open_page(driver, ui)
    load_example(driver, "answer_checks_multi.json")
    text = css(driver, "#grader-text").get_attribute("value")
    broken = text.replace('"operation": "ilike"', '"operation": "contains"', 1)
    assert broken != text
    type_into(driver, "grader-text", broken)
    wait(driver, lambda d: "✗" in css(d, "#grader-status").text)
    status = css(driver, "#grader-status").text
    assert "graders.mentions.operation" in status and "'contains' is not supported" in status
    marks = driver.find_elements(By.CSS_SELECTOR, "#grader-editor .backdrop mark")
    assert [m.get_attribute("textContent") for m in marks] == ['"contains"']
    css(driver, "#goto-error").click()
    selected = driver.execute_script("const a = document.getElementById('grader-text'); return a.value.slice(a.selectionStart, a.selectionEnd)")
    assert selected == '"contains"'
    no_comma = broken.replace('"contains"', '"contains" "x"', 1)
    type_into(driver, "grader-text", no_comma)
    wait(driver, lambda d: "not valid JSON" in css(d, "#grader-status").text)
    assert "expected ',' or '}'" in css(driver, "#grader-status").text
    assert [m.get_attribute("textContent") for m in driver.find_elements(By.CSS_SELECTOR, "#grader-editor .backdrop mark")] == ['"']
    load_example(driver, "formula_unbalanced.json")
    assert "calculate_output" in css(driver, "#grader-status").text
    assert [m.get_attribute("textContent") for m in driver.find_elements(By.CSS_SELECTOR, "#grader-editor .backdrop mark")] == ["b"]


def test_switching_a_scoring_option_changes_the_score(driver, ui):
    open_page(driver, ui)
    load_example(driver, "fuzzy_answer.json")
    assert run_and_read(driver) == pytest.approx(0.40909, abs=1e-5)
    assert css(driver, "#result .metric .metric-scorer").text == "ratio"  # the metric's signature is listed
    scorer = Select(css(driver, "#opt-text_similarity-fuzzy_match-scorer"))
    assert [o.text.split(" ")[0] for o in scorer.options][:2] == ["ratio", "ratio_dp"]
    assert not css(driver, "#opt-python-return_policy").is_displayed()  # only this grader's options by default
    before = css(driver, "#result .reward").text
    scorer.select_by_visible_text("wratio_dp")
    assert reward_text_changes(driver, before) == pytest.approx(0.855)
    assert css(driver, "#result .metric .metric-scorer").text == "WRatio"
    assert "changed" in css(driver, '.option[data-name="text_similarity.fuzzy_match.scorer"]').get_attribute("class")
    before = css(driver, "#result .reward").text
    css(driver, "#reset-options").click()
    assert reward_text_changes(driver, before) == pytest.approx(0.40909, abs=1e-5)


def test_a_structured_sample_with_tool_calls_and_a_python_grader_show_their_details(driver, ui, shots):
    open_page(driver, ui)
    load_example(driver, "tool_call_name.json")
    assert css(driver, "#sample-kind-structured").is_selected()
    assert run_and_read(driver) == 1.0
    assert css(driver, '#result .template[data-key="input"]').text == "get_weather"
    css(driver, "#add-tool-call").click()
    assert json.loads(css(driver, "#sample-json").get_attribute("value"))["output_tools"][1]["function"]["name"] == "tool_name"
    load_example(driver, "python_word_budget.json")
    assert run_and_read(driver) == pytest.approx(5 / 9)
    assert css(driver, "#result .python-output").text == "9 words for a budget of 5"
    assert css(driver, "#result .isolation").text.startswith("bubblewrap")
    source = css(driver, "#source-text")
    assert source.get_attribute("value").startswith("def grade(sample, item):\n    words = ")
    source.send_keys(Keys.CONTROL, Keys.END, Keys.NULL, Keys.BACKSPACE, Keys.SHIFT, Keys.HOME, Keys.NULL, "    return 0.25 if len(words) > budget else 1.0")
    wait(driver, lambda d: "return 0.25" in json.loads(css(d, "#grader-text").get_attribute("value"))["source"])
    assert run_and_read(driver) == 0.25
    type_into(driver, "item-json", '{"budget": 5}')
    assert run_and_read(driver) == 0.0
    errors = css(driver, '#result .error-flag[data-flag="python_grader_runtime_error"]').text
    assert "KeyError: 'max_words'" in errors and 'line 3, in grade' in errors
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(str(shots / "playground-python.png"))


JUDGE = {
    "type": "score_model", "name": "judge", "model": "judge-model", "range": [0, 1],
    "input": [{"role": "system", "content": "Grade the answer."}, {"role": "user", "content": "Answer: {{ sample.output_text }} #script {{ item.script }}"}],
}


def test_a_judge_shows_its_raw_reply_steps_and_token_usage(driver, ui):
    open_page(driver, ui)
    type_into(driver, "grader-text", json.dumps(JUDGE, indent=2))
    wait(driver, lambda d: "Valid score_model" in css(d, "#grader-status").text)
    css(driver, "#sample-kind-text").click()
    type_into(driver, "sample-text", "Paris")
    type_into(driver, "item-json", json.dumps({"script": {"result": 0.75, "usage": [12, 5, 0]}}))
    assert run_and_read(driver) == 0.75
    assert css(driver, "#result .judge-steps").text.strip().startswith("[")
    assert css(driver, "#result .judge-response_format").text == "json_schema"
    assert '"total_tokens": 17' in css(driver, "#result").text
    type_into(driver, "item-json", json.dumps({"script": {"finish_reason": "length", "content": "The answer is partly"}}))
    assert run_and_read(driver) == 0.0
    assert css(driver, "#result .judge-raw").text == "The answer is partly"
    assert css(driver, '#result .error-flag[data-flag="model_grader_exceeded_max_tokens_error"]').is_displayed()


def test_the_grader_can_be_saved_as_a_file(driver, ui, downloads):
    open_page(driver, ui)
    load_example(driver, "exact_answer.json")
    ActionChains(driver).key_down(Keys.CONTROL).send_keys("s").key_up(Keys.CONTROL).perform()
    saved = downloads / "exact_answer.json"
    wait(driver, lambda d: saved.exists() and saved.stat().st_size > 0)
    assert json.loads(saved.read_text()) == EXACT


def _upload_rows(path: Path, n: int) -> tuple[int, int]:
    """n rows: every 8th has no answer (invalid_variable_error), every 3rd answers in lower case; returns how many
    rows are flagged and how many change from eq to ilike."""
    flagged = changed = 0
    with path.open("w") as handle:
        for i in range(n):
            if i % 8 == 7:
                row = {"model_sample": f"row {i}", "item": {}}
                flagged += 1
            elif i % 3 == 0:
                row = {"model_sample": "paris", "item": {"answer": "Paris"}}
                changed += 1
            else:
                row = {"model_sample": "Paris", "item": {"answer": "Paris"}}
            handle.write(json.dumps(row) + "\n")
    return flagged, changed


def test_upload_a_thousand_rows_filter_by_an_error_flag_and_compare_two_versions(driver, ui, shots, tmp_path):
    open_page(driver, ui)
    load_example(driver, "exact_answer.json")
    css(driver, "#pin-grader").click()
    rows = tmp_path / "rows.jsonl"
    flagged, changed = _upload_rows(rows, 1000)
    css(driver, "#tab-rows").click()
    css(driver, 'button[data-rows="capitals.jsonl"]').click()  # example rows go through the paste box
    wait(driver, lambda d: "Graded 5 rows of capitals.jsonl" in css(d, "#rows-status").text)
    assert css(driver, "#rows-text").get_attribute("value").count("\n") == 5
    css(driver, "#rows-file").send_keys(str(rows))
    wait(driver, lambda d: "Graded 1,000 rows" in css(d, "#rows-status").text)
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#summary svg rect.bar"))
    bars = driver.find_elements(By.CSS_SELECTOR, "#summary svg rect.bar")
    assert sum(int(b.get_attribute("data-count")) for b in bars) == 1000
    assert len(driver.find_elements(By.CSS_SELECTOR, "#rows-body tr")) == 50
    Select(css(driver, "#filter-flag")).select_by_value("invalid_variable_error")
    wait(driver, lambda d: f"of {flagged}" in css(d, "#page-info").text)
    shown = driver.find_elements(By.CSS_SELECTOR, "#rows-body tr")
    assert len(shown) == min(50, flagged) and all("invalid_variable_error" in tr.text for tr in shown)
    shown[0].send_keys(Keys.ENTER)
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#row-dialog .explained .reward"))
    assert "item.answer" in css(driver, "#row-dialog .explained .errors").text
    css(driver, "#row-dialog").send_keys(Keys.ESCAPE)
    wait(driver, lambda d: not css(d, "#row-dialog").get_attribute("open"))
    Select(css(driver, "#filter-flag")).select_by_value("")

    css(driver, "#tab-edit").click()
    text = css(driver, "#grader-text").get_attribute("value")
    type_into(driver, "grader-text", text.replace('"eq"', '"ilike"'))
    wait(driver, lambda d: "Valid" in css(d, "#grader-status").text)
    css(driver, "#tab-rows").click()
    css(driver, "#compare").click()
    wait(driver, lambda d: "Compared" in css(d, "#rows-status").text)
    assert css(driver, "#summary .changed-summary").text.startswith(f"{changed} rows changed")
    assert f"of {changed}" in css(driver, "#page-info").text
    first = driver.find_elements(By.CSS_SELECTOR, "#rows-body tr")[0]
    assert [c.text for c in first.find_elements(By.CSS_SELECTOR, ".reward-a, .reward-b, .change")] == ["0", "1", "+1"]
    tall_screenshot(driver, shots / "playground-compare.png")


def test_a_batch_output_of_100k_rows_loads_only_the_rows_it_shows(driver, big_ui, big_output, shots):
    started = time.monotonic()
    driver.get(big_ui.url)  # `graders ui OUT.jsonl` opens the file on the Rows tab
    wait(driver, lambda d: "of 100,000" in css(d, "#page-info").text, timeout=30)
    first_page = time.monotonic() - started
    assert len(driver.find_elements(By.CSS_SELECTOR, "#rows-body tr")) == 50
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#summary svg rect.bar"), timeout=60)
    bars = driver.find_elements(By.CSS_SELECTOR, "#summary svg rect.bar")
    assert sum(int(b.get_attribute("data-count")) for b in bars) == BIG_ROWS
    Select(css(driver, "#sort")).select_by_value("reward")
    wait(driver, lambda d: css(d, "#rows-body tr .reward-cell").text == "0")
    css(driver, "#page-next").click()
    wait(driver, lambda d: "Rows 51–100 of 100,000" in css(d, "#page-info").text)
    Select(css(driver, "#filter-flag")).select_by_value("invalid_variable_error")
    wait(driver, lambda d: "of 10,000" in css(d, "#page-info").text)
    assert len(driver.find_elements(By.CSS_SELECTOR, "#rows-body tr")) == 50
    transferred = driver.execute_script(
        "return performance.getEntriesByType('resource').filter(e => e.name.includes('/playground/file/')).reduce((s, e) => s + e.encodedBodySize, 0)")
    assert transferred < big_output.stat().st_size / 50  # pages of rows, never the file
    driver.find_elements(By.CSS_SELECTOR, "#rows-body tr")[0].click()
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#row-dialog .recorded .reward"))
    css(driver, "#row-dialog-close").click()
    Select(css(driver, "#filter-flag")).select_by_value("")
    wait(driver, lambda d: "of 100,000" in css(d, "#page-info").text)
    tall_screenshot(driver, shots / "playground-rows.png")
    assert first_page < 10, f"first page of a 100k-row output took {first_page:.1f} s"
    print(f"100k-row output: first page in {first_page * 1000:.0f} ms, {transferred} bytes of rows fetched")


def test_keyboard_only_use_and_phone_width(driver, ui, shots):
    driver.get(ui.url)
    wait(driver, lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))
    ActionChains(driver).send_keys(Keys.TAB).perform()
    assert driver.switch_to.active_element.get_attribute("class") == "skip"
    ActionChains(driver).send_keys(Keys.TAB).perform()
    focused = driver.switch_to.active_element
    assert focused.get_attribute("id") == "tab-edit"
    assert driver.execute_script("return getComputedStyle(arguments[0]).outlineStyle", focused) != "none"
    ActionChains(driver).send_keys(Keys.ARROW_RIGHT).perform()
    assert css(driver, "#view-rows").is_displayed() and driver.switch_to.active_element.get_attribute("id") == "tab-rows"
    ActionChains(driver).key_down(Keys.ALT).send_keys("1").key_up(Keys.ALT).perform()
    assert css(driver, "#view-edit").is_displayed()
    css(driver, "#run").send_keys("?")
    assert css(driver, "#help-dialog").get_attribute("open") is not None
    ActionChains(driver).send_keys(Keys.ESCAPE).perform()
    load_example(driver, "answer_checks_multi.json")
    run_and_read(driver)
    driver.set_window_size(390, 860)
    wait(driver, lambda d: d.execute_script("return window.innerWidth") < 500)
    overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow} px wider than a phone screen"
    driver.save_screenshot(str(shots / "playground-phone.png"))
    driver.set_window_size(1280, 1000)


def test_graders_serve_with_a_key_asks_for_it_once(driver):
    with GradersServer("--api-key", "s3cret") as srv:
        driver.get(srv.root + "/")
        wait(driver, lambda d: css(d, "#key-dialog").get_attribute("open") is not None)
        css(driver, "#key-input").send_keys("s3cret", Keys.ENTER)
        wait(driver, lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))
        assert "full isolation" in css(driver, "#server-status").text or "refused" in css(driver, "#server-status").text
        load_example(driver, "exact_answer.json")
        assert run_and_read(driver) == 1.0
        # The one failed request is the first, keyless one, which is how the page learns that it needs the key.
        problems = console_problems(driver)
        assert len(problems) == 1 and "401" in problems[0]["message"], problems
