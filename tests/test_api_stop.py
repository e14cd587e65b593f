"""Stop strings over streamed text pieces (pure Python, no GPU)."""

from __future__ import annotations

import pytest

from notebook_llm.api.stop import StopStringMatcher


def _run(stops, pieces):
    matcher = StopStringMatcher(stops)
    emitted = [matcher.push(p) for p in pieces]
    return "".join(emitted) + matcher.flush(), matcher.stopped, emitted


def test_stop_string_spanning_two_tokens_is_not_emitted():
    text, stopped, emitted = _run(["END"], ["Hello E", "ND and more"])
    assert (text, stopped) == ("Hello ", True)
    assert emitted[0] == "Hello "  # the "E" was held back, not emitted and then taken back


def test_held_back_text_is_released_when_it_turns_out_not_to_be_a_stop():
    text, stopped, emitted = _run(["END"], ["Hello E", "nd", "ing"])
    assert (text, stopped) == ("Hello Ending", False)


def test_earliest_of_several_stop_strings_wins():
    text, stopped, _ = _run(["\n\n", "world"], ["hello wor", "ld\n\nagain"])
    assert (text, stopped) == ("hello ", True)


def test_nothing_is_emitted_after_a_stop():
    matcher = StopStringMatcher(["x"])
    assert matcher.push("abxcd") == "ab"
    assert matcher.push("more") == "" and matcher.flush() == ""


@pytest.mark.parametrize("split", range(1, 12))
def test_any_split_of_the_text_gives_the_same_result(split):
    full = "The answer is 42.###tail"
    text, stopped, _ = _run(["###"], [full[:split], full[split:]])
    assert (text, stopped) == ("The answer is 42.", True)


def test_empty_stop_list_passes_everything_through():
    assert _run([], ["a", "b"])[0] == "ab"
