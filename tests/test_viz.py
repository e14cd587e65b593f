"""Logprob views (notebook_llm.viz) on responses built by hand, plus one run on the real model."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from notebook_llm.api.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    ChatCompletionTokenLogprob,
    Choice,
    ChoiceDelta,
    ChoiceLogprobs,
    ChunkChoice,
    Completion,
    CompletionChoice,
    CompletionLogprobs,
    TopLogprob,
)
from notebook_llm.viz import (
    Heatmap,
    TokenLogprobs,
    alternatives_table_html,
    compare,
    compare_html,
    heatmap_html,
    perplexity,
    plot_logprobs,
    probability_colour,
    token_view,
)

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")  # no display here; the views never need one

GREEN_END, YELLOW_MIDDLE, RED_END = "#63be7b", "#ffeb84", "#f8696b"

# (token, probability, alternatives as (token, probability), most likely first)
HAIKU = [
    ("The", 0.5, [("The", 0.5), ("A", 0.3), ("In", 0.1)]),
    (" sea", 0.25, [(" sky", 0.5), (" sea", 0.25), (" sun", 0.125)]),
    (" is", 1.0, [(" is", 1.0)]),
    ("\n", 0.877, [("\n", 0.877), (" so", 0.05)]),
]


def entries(spec) -> list[ChatCompletionTokenLogprob]:
    return [
        ChatCompletionTokenLogprob(
            token, math.log(p), list(token.encode()),
            [TopLogprob(t, math.log(q), list(t.encode())) for t, q in alternatives],
        )
        for token, p, alternatives in spec
    ]


def chat(*specs, with_logprobs: bool = True) -> ChatCompletion:
    choices = [
        Choice(i, ChatCompletionMessage("".join(t for t, _, _ in spec)), "length",
               ChoiceLogprobs(entries(spec)) if with_logprobs else None)
        for i, spec in enumerate(specs)
    ]
    return ChatCompletion("chatcmpl-test", choices, 0, "test-model")


def legacy(spec) -> Completion:
    logprobs = CompletionLogprobs(
        [t for t, _, _ in spec],
        [math.log(p) for _, p, _ in spec],
        [{t: math.log(q) for t, q in alternatives} for _, _, alternatives in spec],
        list(np.cumsum([0] + [len(t) for t, _, _ in spec[:-1]])),
    )
    text = "".join(t for t, _, _ in spec)
    return Completion("cmpl-test", [CompletionChoice(text, 0, "length", logprobs)], 0, "test-model")


def expected_view(spec) -> TokenLogprobs:
    return TokenLogprobs(
        tuple(t for t, _, _ in spec),
        tuple(math.log(p) for _, p, _ in spec),
        tuple(tuple((t, math.log(q)) for t, q in alternatives) for _, _, alternatives in spec),
    )


# --- reading responses ------------------------------------------------------------------------


def test_token_view_reads_every_chat_shape_the_same():
    response = chat(HAIKU)
    choice = response.choices[0]
    shapes = [response, choice, choice.logprobs, choice.logprobs.content, response.to_dict(),
              choice.to_dict(), choice.logprobs.to_dict(), [e.to_dict() for e in choice.logprobs.content]]
    for shape in shapes:
        assert token_view(shape) == expected_view(HAIKU), type(shape)


def test_token_view_reads_the_openai_clients_pydantic_objects():
    openai_types = pytest.importorskip("openai.types")
    from openai.types.chat import ChatCompletion as OpenAIChatCompletion

    chat_model = OpenAIChatCompletion.model_validate(chat(HAIKU).to_dict())
    legacy_model = openai_types.Completion.model_validate(legacy(HAIKU).to_dict())
    assert token_view(chat_model) == expected_view(HAIKU)
    assert token_view(chat_model.model_dump()) == expected_view(HAIKU)
    assert token_view(legacy_model) == expected_view(HAIKU)


def test_legacy_completion_shapes_give_the_same_view():
    response = legacy(HAIKU)
    for shape in (response, response.choices[0], response.choices[0].logprobs, response.to_dict()):
        assert token_view(shape) == expected_view(HAIKU), type(shape)


def test_legacy_echoed_first_token_without_logprob_is_left_out():
    logprobs = CompletionLogprobs(["Hi", " there"], [None, -0.5], [None, {" there": -0.5, " you": -1.5}], [0, 2])
    view = token_view(logprobs)
    assert view.tokens == (" there",)
    assert view.alternatives == (((" there", -0.5), (" you", -1.5)),)


def test_alternatives_are_ranked_most_likely_first_whatever_the_reported_order():
    view = token_view({"tokens": ["a"], "token_logprobs": [-1.0], "top_logprobs": [{"b": -2.0, "a": -1.0, "c": -0.5}],
                       "text_offset": [0]})
    assert [t for t, _ in view.alternatives[0]] == ["c", "a", "b"]


def test_streamed_chunks_are_joined_per_choice():
    two = [HAIKU[:2], HAIKU[2:]]
    chunks = [ChatCompletionChunk("c", [ChunkChoice(0, ChoiceDelta(role="assistant", content=""))], 0, "m")]
    for i, piece in enumerate(two):
        for index in (0, 1):
            spec = piece if index == 0 else piece[::-1]
            chunks.append(ChatCompletionChunk("c", [ChunkChoice(index, ChoiceDelta(content="x"), None,
                                                                ChoiceLogprobs(entries(spec)))], 0, "m"))
    chunks.append(ChatCompletionChunk("c", [ChunkChoice(0, ChoiceDelta(), "length")], 0, "m"))
    assert token_view(chunks) == expected_view(HAIKU)
    assert token_view([c.to_dict() for c in chunks], choice=1) == expected_view(HAIKU[:2][::-1] + HAIKU[2:][::-1])


def test_second_choice_is_read_with_choice_index():
    other = [("Hi", 0.9, [("Hi", 0.9)])]
    assert token_view(chat(HAIKU, other), choice=1).tokens == ("Hi",)


def test_response_without_logprobs_says_how_to_request_them():
    response = chat(HAIKU, with_logprobs=False)
    for shape in (response, response.choices[0], response.to_dict(), ChoiceLogprobs(None)):
        with pytest.raises(ValueError, match=r"logprobs=True, top_logprobs=k"):
            token_view(shape)
    with pytest.raises(ValueError, match=r"logprobs=True"):
        heatmap_html(response)


def test_choice_out_of_range_names_the_choice_and_the_count():
    with pytest.raises(ValueError, match=r"choice=3 is out of range: this response has 1 choice"):
        token_view(chat(HAIKU), choice=3)


@pytest.mark.parametrize("value", ["some text", 42, None, [1, 2], {"role": "user"}])
def test_input_that_is_not_a_response_is_a_type_error(value):
    with pytest.raises(TypeError, match="cannot read token log-probabilities"):
        token_view(value)


# --- numbers ----------------------------------------------------------------------------------


def test_perplexity_is_exp_of_minus_mean_logprob():
    logprobs = np.log([p for _, p, _ in HAIKU])
    expected = np.exp(-logprobs.mean())
    # the same float64 operations in the same order: equal to rounding of the last bit
    assert perplexity(chat(HAIKU)) == pytest.approx(expected, rel=1e-15)
    assert token_view(chat(HAIKU)).perplexity == pytest.approx(expected, rel=1e-15)
    assert math.isnan(token_view([]).perplexity)


def test_entropy_is_of_the_renormalised_top_k():
    view = token_view(chat(HAIKU))
    expected = []
    for _, _, alternatives in HAIKU:
        q = np.array([p for _, p in alternatives], np.float64)
        q = q / q.sum()
        expected.append(-(q * np.log(q)).sum())
    # float64 softmax of logs against direct normalisation: a few ulps apart
    np.testing.assert_allclose(view.entropy, expected, rtol=1e-12, atol=1e-15)
    assert view.entropy[2] == 0.0  # a single alternative: no uncertainty left in the truncation
    two_equal = token_view([{"token": "a", "logprob": -1.0, "top_logprobs": [{"token": "a", "logprob": -1.0},
                                                                             {"token": "b", "logprob": -1.0}]}])
    assert two_equal.entropy[0] == pytest.approx(math.log(2), rel=1e-15)
    np.testing.assert_allclose(view.top_k_mass, [0.9, 0.875, 1.0, 0.927], rtol=1e-12)


def test_entropy_without_alternatives_is_nan():
    view = token_view([{"token": "a", "logprob": -0.1, "top_logprobs": []}])
    assert math.isnan(view.entropy[0])


def test_top_k_entropy_never_exceeds_the_full_distributions(rng):
    for _ in range(200):
        n = int(rng.integers(2, 50))
        full = np.sort(rng.dirichlet(np.full(n, rng.uniform(0.05, 3.0))))[::-1]
        k = int(rng.integers(1, n + 1))
        view = TokenLogprobs(("t0",), (math.log(full[0]),),
                             (tuple((f"t{j}", math.log(full[j])) for j in range(k) if full[j] > 0),))
        full_entropy = -(full[full > 0] * np.log(full[full > 0])).sum()
        # a lower bound exactly; 1e-12 covers float64 rounding of sums of up to 50 terms
        assert view.entropy[0] <= full_entropy + 1e-12


def test_lowest_lists_least_probable_positions_first():
    assert token_view(chat(HAIKU)).lowest(2) == [1, 0]


# --- heatmap ----------------------------------------------------------------------------------


def test_colour_scale_ends_and_middle():
    assert probability_colour(1.0) == GREEN_END
    assert probability_colour(0.0) == RED_END
    assert probability_colour(math.exp(-50)) == RED_END
    assert probability_colour(0.5) == YELLOW_MIDDLE
    assert probability_colour(0.25) == "#fcaa78"  # halfway between red and yellow, rounded half up
    assert probability_colour(1.2) == GREEN_END and probability_colour(-0.1) == RED_END


def test_heatmap_tints_each_token_by_its_probability():
    spec = [("yes", 1.0, [("yes", 1.0)]), ("no", math.exp(-60), [("maybe", 0.9)])]
    page = heatmap_html(chat(spec))
    summaries = re.findall(r"<summary [^>]*background:(#[0-9a-f]{6})[^>]*>(.*?)</summary>", page)
    assert summaries == [(GREEN_END, "yes"), (RED_END, "no")]


def test_heatmap_shows_probabilities_as_percent_with_one_decimal():
    page = heatmap_html(chat(HAIKU))
    assert "87.7%" in page  # 0.877 (0.8765 would show 87.6%: its binary value is just below)
    assert "25.0%" in page and "12.5%" in page and "100.0%" in page
    tiny = heatmap_html(chat([("x", 0.0004, [("y", 0.9), ("x", 0.0004)])]))
    assert "&lt;0.1%" in tiny  # below 0.05% the percent would round to 0.0%


def test_heatmap_escapes_model_text():
    spec = [("<script>alert(1)</script>", 0.5, [("<script>alert(1)</script>", 0.5), ('"><img src=x onerror=1>', 0.4)])]
    page = heatmap_html(chat(spec))
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&quot;&gt;&lt;img" in page


def test_heatmap_lists_alternatives_on_hover_and_on_click():
    page = heatmap_html(chat(HAIKU))
    titles = re.findall(r'title="([^"]*)"', page)
    assert titles[1] == (
        "#1 &quot; sea&quot;  25.0%  (logprob -1.386)&#10;alternatives:&#10;  &quot; sky&quot;  50.0%&#10;"
        "  &quot; sea&quot;  25.0%&#10;  &quot; sun&quot;  12.5%"
    )
    assert page.count("<details") == len(HAIKU)
    panels = re.findall(r"</summary><div [^>]*>(.*?)</div></details>", page)
    assert len(panels) == len(HAIKU)
    assert "sky" in panels[1] and "50.0%" in panels[1] and "12.5%" in panels[1]
    assert "<script" not in page.lower() and "onclick" not in page and " id=" not in page


def test_heatmap_makes_whitespace_visible_and_breaks_lines_after_newlines():
    page = heatmap_html(chat([(" a", 0.5, []), ("\n\n", 0.5, []), ("\t", 0.5, []), ("", 0.5, [])]))
    assert ">·</span>a</summary>" in page
    assert ">↵↵</span></summary>" in page
    assert page.count("<br>") == 2
    assert ">→</span></summary>" in page and ">∅</span></summary>" in page


def test_heatmap_is_deterministic_whatever_the_input_shape():
    response = chat(HAIKU)
    assert heatmap_html(response) == heatmap_html(response)
    assert heatmap_html(response.to_dict()) == heatmap_html(response)
    assert Heatmap(response)._repr_html_() == heatmap_html(response)
    assert str(Heatmap(response)) == "Heatmap of 4 tokens, perplexity 1.74"


def test_heatmap_legend_can_be_left_out():
    assert "perplexity" in heatmap_html(chat(HAIKU))
    assert "perplexity" not in heatmap_html(chat(HAIKU), legend=False)


# --- table and comparison ---------------------------------------------------------------------


def test_alternatives_table_has_one_row_per_token_and_k_alternatives():
    table = alternatives_table_html(chat(HAIKU), k=2)
    rows = re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1])
    assert len(rows) == len(HAIKU)
    cells = re.findall(r"<td [^>]*>(.*?)</td>", rows[1])
    assert cells[0] == "1" and cells[2] == "25.0%"
    assert len(cells) == 3 + 2
    assert "sky" in cells[3] and "50.0%" in cells[3] and "sun" not in rows[1]
    assert "font-weight:bold" in re.findall(r"<td [^>]*>", rows[1])[4]  # the sampled " sea" among alternatives
    assert alternatives_table_html(chat(HAIKU)).count("sun") == 1
    with pytest.raises(ValueError, match="k must be"):
        alternatives_table_html(chat(HAIKU), k=-1)


def test_compare_finds_the_first_divergence_and_marks_differing_rows():
    other = HAIKU[:2] + [(" blue", 0.3, [(" blue", 0.3)])]
    comparison = compare(chat(HAIKU), chat(other), labels=("t=0", "t=1"))
    assert comparison.first_divergence == 2
    page = compare_html(chat(HAIKU), chat(other), labels=("t=0", "t=1"))
    assert comparison._repr_html_() == page
    assert page.count("≠") == 2  # position 2 differs, position 3 exists only in A
    assert "+0.000" in page  # same token, same logprob: Δ logprob 0
    assert "first difference at position 2" in page
    assert compare(chat(HAIKU), chat(HAIKU)).first_divergence is None
    assert compare(chat(HAIKU), chat(HAIKU[:3])).first_divergence == 3


def test_compare_escapes_labels():
    page = compare_html(chat(HAIKU), chat(HAIKU), labels=("<b>", "B"))
    assert "&lt;b&gt; token" in page and "<b> token" not in page


# --- plot -------------------------------------------------------------------------------------


def test_plot_has_one_point_per_token_and_writes_a_png(tmp_path):
    path = tmp_path / "logprobs.png"
    plot = plot_logprobs(chat(HAIKU), annotate=2, path=path)
    try:
        (line,) = plot.logprob_axes.get_lines()
        np.testing.assert_array_equal(line.get_xdata(), np.arange(len(HAIKU)))
        np.testing.assert_allclose(line.get_ydata(), [math.log(p) for _, p, _ in HAIKU], rtol=1e-15)
        entropy_line = plot.entropy_axes.get_lines()[0]
        assert len(entropy_line.get_xdata()) == len(HAIKU)
        labels = [text.get_text() for text in plot.logprob_axes.texts]
        assert labels == ["·sea\n25.0%", "The\n50.0%"]
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000
        assert str(plot) == (
            f"4 points, perplexity 1.74\nposition 1: ·sea 25.0%\nposition 0: The 50.0%\nsaved to {path}"
        )
        assert "4 points, perplexity 1.74" in plot._repr_html_()
    finally:
        plot.close()


def test_plot_on_given_axes_puts_entropy_on_a_twin():
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots()
    try:
        plot = plot_logprobs(chat(HAIKU), ax=ax, annotate=0)
        assert plot.logprob_axes is ax and plot.figure is figure
        assert plot.entropy_axes is not ax and plot.entropy_axes.bbox.bounds == ax.bbox.bounds
        assert plot.annotated == ()
    finally:
        plt.close(figure)


def test_plot_without_alternatives_still_draws_the_logprobs():
    plot = plot_logprobs([{"token": "a", "logprob": -0.1, "top_logprobs": []},
                          {"token": "$x$", "logprob": -2.0, "top_logprobs": []}])
    try:
        assert len(plot.logprob_axes.get_lines()[0].get_xdata()) == 2
        plot.figure.canvas.draw()  # "$x$" must not go through mathtext
    finally:
        plot.close()


# --- the real model ---------------------------------------------------------------------------


@pytest.mark.slow
def test_views_work_on_a_real_response(engine, tmp_path):
    reply = engine.chat.completions.create(
        messages=[{"role": "user", "content": "Name a colour."}],
        logprobs=True, top_logprobs=5, temperature=0, max_tokens=6,
    )
    view = token_view(reply)
    assert 1 <= len(view) <= 6
    assert view.text == reply.choices[0].message.content
    assert all(len(alternatives) == 5 for alternatives in view.alternatives)
    # greedy: the sampled token is the most likely one reported (ties aside)
    assert all(lp >= alternatives[0][1] - 1e-6 for lp, alternatives in zip(view.logprobs, view.alternatives))
    assert np.all((view.entropy >= 0) & (view.entropy <= math.log(5) + 1e-9))
    page = heatmap_html(reply)
    assert page.count("<details") == len(view)
    plot = plot_logprobs(reply, path=tmp_path / "real.png")
    try:
        assert len(plot.logprob_axes.get_lines()[0].get_xdata()) == len(view)
        assert (tmp_path / "real.png").stat().st_size > 1000
    finally:
        plot.close()
