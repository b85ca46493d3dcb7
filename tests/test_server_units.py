"""The server's small parts on their own: the in-flight bound, the compiled-grader cache, the Host policy and the
request options allow-list."""

from __future__ import annotations

import asyncio

import pytest

import graders
from graders.server.cache import ASYNC, INLINE, THREAD, GraderCache, execution_mode
from graders.server.guard import HostPolicy
from graders.server.limits import InFlight
from graders.server.request_options import NOT_FROM_REQUESTS, SCORING_OPTIONS, request_overrides
from graders.validation import GraderValidationError

CHECK = {"type": "string_check", "name": "c", "input": "{{ sample.output_text }}", "reference": "x", "operation": "eq"}


def test_in_flight_refuses_when_full_and_queues_waiters_in_order() -> None:
    async def main() -> list[int]:
        slots = InFlight(1)
        assert slots.try_enter() and not slots.try_enter()
        order: list[int] = []

        async def waiter(i: int) -> None:
            await slots.enter()
            order.append(i)
            await asyncio.sleep(0)
            slots.leave()

        tasks = [asyncio.ensure_future(waiter(i)) for i in range(3)]
        await asyncio.sleep(0)
        assert not slots.try_enter()  # queued callers come first
        slots.leave()
        await asyncio.gather(*tasks)
        assert slots.active == 0 and slots.try_enter()
        return order

    assert asyncio.run(main()) == [0, 1, 2]


def test_in_flight_passes_a_slot_on_when_a_waiter_gives_up() -> None:
    async def main() -> int:
        slots = InFlight(1)
        slots.try_enter()
        quitter = asyncio.ensure_future(slots.enter())
        stayer = asyncio.ensure_future(slots.enter())
        await asyncio.sleep(0)
        quitter.cancel()
        slots.leave()
        await stayer
        return slots.active

    assert asyncio.run(main()) == 1


class Closing(graders.CompiledGrader):
    """A real compiled grader that counts its `close()` calls."""

    def __init__(self) -> None:
        super().__init__(CHECK)
        self.closed = 0

    def close(self) -> None:
        self.closed += 1
        super().close()


def test_cache_evicts_least_recently_used_and_closes_only_unused_graders() -> None:
    cache = GraderCache(2)
    made = {k: Closing() for k in (b"a", b"b", b"c")}
    a = cache.lease(b"a", lambda: made[b"a"])
    cache.release(cache.lease(b"b", lambda: made[b"b"]))
    cache.release(cache.lease(b"a", lambda: pytest.fail("a hit must not rebuild")))
    cache.release(cache.lease(b"c", lambda: made[b"c"]))
    assert made[b"b"].closed == 1 and made[b"a"].closed == 0  # b was least recently used
    assert cache.hits == 1 and cache.misses == 3 and len(cache) == 2
    cache.release(a)
    assert made[b"a"].closed == 0  # still cached
    cache.clear()
    assert made[b"a"].closed == made[b"c"].closed == 1


def test_cache_keeps_a_validation_error_without_revalidating() -> None:
    cache = GraderCache(4)
    calls = []

    def build() -> graders.CompiledGrader:
        calls.append(1)
        return graders.compile({**CHECK, "input": 3})

    for _ in range(3):
        entry = cache.lease(b"bad", build)
        assert isinstance(entry.error, GraderValidationError) and entry.error.param == "input"
        cache.release(entry)
    assert calls == [1]


@pytest.mark.parametrize(
    ("grader", "mode"),
    [
        (CHECK, INLINE),
        ({"type": "multi", "graders": {"a": CHECK}, "calculate_output": "a"}, INLINE),
        ({"type": "python", "source": "def grade(s, i):\n    return 1.0\n"}, ASYNC),
        ({"type": "multi", "graders": {"a": CHECK, "t": {**CHECK, "type": "text_similarity", "evaluation_metric": "bleu", "pass_threshold": 0.1}}, "calculate_output": "a"}, THREAD),
    ],
)
def test_execution_mode_follows_the_types_in_the_tree(grader: dict, mode: str) -> None:
    assert execution_mode(graders.compile(grader)) == mode


def test_host_policy() -> None:
    loopback = HostPolicy("127.0.0.1", 8765)
    assert loopback.allows("127.0.0.1:8765") and loopback.allows("localhost") and loopback.allows("[::1]:8765")
    assert not loopback.allows("10.1.2.3:8765") and not loopback.allows("rebind.example:8765") and not loopback.allows(None)
    assert not loopback.allows("127.0.0.1:9999")
    public = HostPolicy("0.0.0.0", 8765, ["graders.lan"])
    assert public.allows("10.1.2.3:8765") and public.allows("graders.lan") and not public.allows("evil.lan")


def test_scoring_options_are_the_u_numbered_ones_minus_the_machines() -> None:
    assert "text_similarity.fuzzy_match.scorer" in SCORING_OPTIONS and "multi.sub_error_policy" in SCORING_OPTIONS
    assert not SCORING_OPTIONS & NOT_FROM_REQUESTS
    assert not [n for n in SCORING_OPTIONS if n.startswith(("models.", "python.isolation", "python.images", "python.timeout"))]
    assert request_overrides({"string_check.ilike_fold": "casefold"}) == {"string_check.ilike_fold": "casefold"}
    with pytest.raises(GraderValidationError) as caught:
        request_overrides({"python.interpreter": "/bin/sh"})
    assert caught.value.param == "options.python.interpreter"
