"""HTML views of token log-probabilities: the heatmap, the alternatives table, the comparison.

Every view is a pure function from a `TokenLogprobs` (or anything `token_view` reads) to a
string of HTML: inline `style=` attributes only, no `<style>` sheet, no JavaScript, no CDN, no
ids. The same input always gives the same bytes (colours and numbers are rounded here, in
Python), so nbval can compare outputs and a saved notebook shows them without a kernel. All
model text goes through `html.escape`: a token is shown as text, never interpreted as markup.
"""

from __future__ import annotations

import html
import itertools
import json
import math
import unicodedata
from dataclasses import InitVar, dataclass
from typing import Any

from .logprobs import TokenLogprobs, token_view

# Colour of a token's background by the probability of the sampled token, interpolated in RGB
# between these stops: red (unlikely) → yellow → green (certain). Black text reads on all three.
COLOUR_STOPS: tuple[tuple[float, tuple[int, int, int]], ...] = (
    (0.0, (248, 105, 107)),
    (0.5, (255, 235, 132)),
    (1.0, (99, 190, 123)),
)
NO_VALUE_COLOUR = "#dddddd"  # a NaN probability

_FONT = "font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px"
_SANS = "font-family:system-ui,-apple-system,Segoe UI,sans-serif;font-size:12px"
_FAINT = "opacity:0.45"
_CELL = "padding:2px 6px;border:1px solid #ccc;text-align:left;vertical-align:top"
# visible stand-ins for characters that would otherwise vanish or break the line
_VISIBLE = {" ": "·", "\n": "↵", "\t": "→", "\r": "␍"}


def probability_colour(p: float) -> str:
    """`#rrggbb` for probability `p` on the fixed red → yellow → green scale (clamped to [0, 1];
    channels rounded half up to integers)."""
    if p is None or math.isnan(p):
        return NO_VALUE_COLOUR
    p = min(max(float(p), 0.0), 1.0)
    for (p0, c0), (p1, c1) in itertools.pairwise(COLOUR_STOPS):
        if p <= p1:
            t = (p - p0) / (p1 - p0)
            return "#" + "".join(f"{math.floor(a + t * (b - a) + 0.5):02x}" for a, b in zip(c0, c1))
    raise AssertionError("unreachable: the last stop is 1.0")


def format_probability(p: float) -> str:
    """A probability as a percent with one decimal ("93.1%"), "<0.1%" below 0.05%, "n/a" for NaN."""
    if p is None or math.isnan(p):
        return "n/a"
    if 0 < p * 100 < 0.05:
        return "<0.1%"
    return f"{100 * min(p, 1.0):.1f}%"


def _format_number(x: float, digits: int = 2) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:.{digits}f}"


def _visible_pieces(token: str) -> list[tuple[bool, str]]:
    """The token split into runs of (is a stand-in, text): whitespace and control characters
    replaced by visible stand-ins, the rest as is."""
    pieces: list[tuple[bool, str]] = []
    for ch in token:
        if ch in _VISIBLE:
            piece = (True, _VISIBLE[ch])
        elif unicodedata.category(ch) in ("Cc", "Cf"):
            piece = (True, f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            piece = (False, ch)
        if pieces and pieces[-1][0] == piece[0]:
            pieces[-1] = (piece[0], pieces[-1][1] + piece[1])
        else:
            pieces.append(piece)
    return pieces or [(True, "∅")]


def visible_token_text(token: str) -> str:
    """The token as plain text with whitespace made visible: `·` space, `↵` newline, `→` tab,
    `␍` carriage return, `\\xNN` / `\\uNNNN` other control and format characters, `∅` if empty."""
    return "".join(text for _, text in _visible_pieces(token))


def visible_token_html(token: str) -> str:
    """`visible_token_text` as escaped HTML, the stand-ins faint so the real text stands out."""
    return "".join(
        f'<span style="{_FAINT}">{html.escape(text)}</span>' if stand_in else html.escape(text)
        for stand_in, text in _visible_pieces(token)
    )


def _quoted(token: str) -> str:
    """The token in double quotes with escapes (\\n, \\t, \\u0000), for plain-text places."""
    return json.dumps(token, ensure_ascii=False)


def _attribute(text: str) -> str:
    """Plain text as an attribute value: escaped, newlines kept as character references."""
    return html.escape(text, quote=True).replace("\n", "&#10;")


# --- heatmap ----------------------------------------------------------------------------------


def heatmap_html(response: Any, *, choice: int = 0, legend: bool = True) -> str:
    """The completion's tokens, each tinted by the probability of the sampled token.

    Hovering a token shows its probability and the top-k alternatives (`title=`); clicking it
    opens the same list in a panel (a `<details>` element: pure HTML, no JavaScript); clicking
    again closes it. Newlines in tokens break the line after the token. `legend` adds the
    colour scale, the token count and the perplexity above the text.
    """
    view = token_view(response, choice=choice)
    parts = ['<div style="line-height:1.9">']
    if legend:
        parts.append(_legend_html(view))
    parts.append(f'<div style="{_FONT}">')
    for i in range(len(view)):
        parts.append(_token_html(view, i))
        parts.append("<br>" * view.tokens[i].count("\n"))
    if not len(view):
        parts.append(f'<span style="{_FAINT}">(no tokens)</span>')
    parts.append("</div></div>")
    return "".join(parts)


@dataclass(frozen=True)
class Heatmap:
    """A notebook-displayable heatmap of one completion: `Heatmap(response)` as a cell's last line.

    Displays as `heatmap_html`; `str()` gives a one-line summary.
    """

    view: TokenLogprobs
    """The tokens shown; anything `token_view` accepts is read into a TokenLogprobs.
    - Type: TokenLogprobs"""
    legend: bool = True
    """Show the colour scale, token count and perplexity above the text. - Type: bool - Default: True"""
    choice: InitVar[int] = 0
    """Which choice of a response with several to show. - Type: int - Default: 0"""

    def __post_init__(self, choice: int):
        object.__setattr__(self, "view", token_view(self.view, choice=choice))

    @property
    def html(self) -> str:
        return heatmap_html(self.view, legend=self.legend)

    def _repr_html_(self) -> str:
        return self.html

    def __str__(self) -> str:
        return f"Heatmap of {len(self.view)} tokens, perplexity {_format_number(self.view.perplexity)}"

    __repr__ = __str__  # the plain-text stand-in a notebook stores beside the HTML: keep it short


def _legend_html(view: TokenLogprobs) -> str:
    swatches = "".join(
        f'<span style="background:{probability_colour(p)};color:#000;padding:0 6px">{p:.0%}</span>'
        for p in (0.0, 0.25, 0.5, 0.75, 1.0)
    )
    return (
        f'<div style="{_SANS};margin-bottom:4px">probability of each token: {swatches} · '
        f"{len(view)} tokens · perplexity {_format_number(view.perplexity)} · "
        "hover a token for its top alternatives, click to pin them</div>"
    )


def _token_html(view: TokenLogprobs, i: int) -> str:
    p = math.exp(view.logprobs[i])
    summary_style = (
        f"list-style:none;cursor:pointer;display:inline;white-space:pre;color:#000;"
        f"background:{probability_colour(p)};padding:1px 1px;border-radius:3px"
    )
    panel_style = (
        f"position:absolute;z-index:10;left:0;top:100%;{_SANS};white-space:nowrap;"
        "background:#fff;color:#000;border:1px solid #999;border-radius:4px;padding:4px 6px;"
        "box-shadow:0 2px 6px rgba(0,0,0,0.25)"
    )
    return (
        '<details style="display:inline-block;position:relative;vertical-align:top;margin:0 1px 0 0">'
        f'<summary title="{_attribute(_token_title(view, i))}" style="{summary_style}">'
        f"{visible_token_html(view.tokens[i])}</summary>"
        f'<div style="{panel_style}">{_alternatives_panel_html(view, i)}</div></details>'
    )


def _token_title(view: TokenLogprobs, i: int) -> str:
    token, logprob = view.tokens[i], view.logprobs[i]
    lines = [f"#{i} {_quoted(token)}  {format_probability(math.exp(logprob))}  (logprob {logprob:.3f})"]
    if view.alternatives[i]:
        lines.append("alternatives:")
        lines += [f"  {_quoted(t)}  {format_probability(math.exp(lp))}" for t, lp in view.alternatives[i]]
    return "\n".join(lines)


def _alternatives_panel_html(view: TokenLogprobs, i: int) -> str:
    token, logprob = view.tokens[i], view.logprobs[i]
    head = (
        f"<div>position {i}: <code>{visible_token_html(token)}</code> "
        f"{format_probability(math.exp(logprob))} (logprob {logprob:.3f})</div>"
    )
    alternatives = view.alternatives[i]
    if not alternatives:
        return head + f'<div style="{_FAINT}">no alternatives reported (top_logprobs=0)</div>'
    rows = []
    for rank, (alt, alt_logprob) in enumerate(alternatives, 1):
        p = math.exp(alt_logprob)
        weight = "font-weight:bold;" if alt == token else ""
        bar = (
            f'<span style="display:inline-block;height:8px;width:{math.floor(60 * min(p, 1.0) + 0.5)}px;'
            f'background:{probability_colour(p)};border:1px solid #999"></span>'
        )
        rows.append(
            f'<tr style="{weight}"><td style="padding:0 4px">{rank}</td>'
            f'<td style="padding:0 4px;{_FONT}">{visible_token_html(alt)}</td>'
            f'<td style="padding:0 4px;text-align:right">{format_probability(p)}</td>'
            f'<td style="padding:0 4px">{bar}</td></tr>'
        )
    note = ""
    if token not in (alt for alt, _ in alternatives):
        note = f'<div style="{_FAINT}">the sampled token is not among the top {len(alternatives)}</div>'
    return head + f'<table style="border-collapse:collapse;margin-top:2px;{_SANS}">{"".join(rows)}</table>' + note


# --- alternatives table -----------------------------------------------------------------------


def alternatives_table_html(response: Any, k: int | None = None, *, choice: int = 0) -> str:
    """A plain HTML table, one row per position: the sampled token, its probability (tinted as in
    the heatmap) and the `k` most likely alternatives with their probabilities (all reported
    ones when `k` is None). The sampled token is bold among its alternatives."""
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 0):
        raise ValueError(f"k must be None or a non-negative int, got {k!r}")
    view = token_view(response, choice=choice)
    width = max((len(a) for a in view.alternatives), default=0)
    width = width if k is None else min(width, k)
    header = "".join(
        f'<th style="{_CELL}">{name}</th>' for name in ["position", "token", "probability"]
    ) + (f'<th style="{_CELL}" colspan="{width}">alternatives, most likely first</th>' if width else "")
    rows = []
    for i in range(len(view)):
        token, p = view.tokens[i], math.exp(view.logprobs[i])
        cells = [
            f'<td style="{_CELL};text-align:right">{i}</td>',
            f'<td style="{_CELL};{_FONT}">{visible_token_html(token)}</td>',
            _probability_cell(p),
        ]
        alternatives = view.alternatives[i][:width]
        for alt, alt_logprob in alternatives:
            weight = "font-weight:bold;" if alt == token else ""
            cells.append(
                f'<td style="{_CELL};{weight}"><span style="{_FONT}">{visible_token_html(alt)}</span> '
                f"{format_probability(math.exp(alt_logprob))}</td>"
            )
        cells += [f'<td style="{_CELL}"></td>'] * (width - len(alternatives))
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f'<table style="border-collapse:collapse;{_SANS}"><thead><tr>{header}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _probability_cell(p: float) -> str:
    """A table cell with the probability as a percent, tinted on the heatmap's colour scale."""
    return (
        f'<td style="{_CELL};text-align:right;color:#000;background:{probability_colour(p)}">'
        f"{format_probability(p)}</td>"
    )


# --- comparison -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """Two completions aligned token by token, by position; build it with `compare(a, b)`.

    Position alignment fits two samplings of one model on one prompt (two temperatures, two
    seeds) or two models that share a tokenizer: up to `first_divergence` the two agree on every
    token and their probabilities can be compared directly; after it the contexts differ and the
    rows are side by side only.
    """

    a: TokenLogprobs
    """The first completion. - Type: TokenLogprobs"""
    b: TokenLogprobs
    """The second completion. - Type: TokenLogprobs"""
    labels: tuple[str, str] = ("A", "B")
    """Column titles for `a` and `b`. - Type: tuple of two str - Default: ("A", "B")"""

    @property
    def first_divergence(self) -> int | None:
        """The first position where the tokens differ (or where the shorter one ends); None when
        both have the same tokens."""
        for i, (x, y) in enumerate(zip(self.a.tokens, self.b.tokens)):
            if x != y:
                return i
        return None if len(self.a) == len(self.b) else min(len(self.a), len(self.b))

    @property
    def html(self) -> str:
        return compare_html(self.a, self.b, labels=self.labels)

    def _repr_html_(self) -> str:
        return self.html

    def __str__(self) -> str:
        return _comparison_summary(self)

    __repr__ = __str__


def compare(a: Any, b: Any, labels: tuple[str, str] = ("A", "B"), *, choice: int = 0) -> Comparison:
    """Align two completions (anything `token_view` accepts) by position; see `Comparison`."""
    if len(labels) != 2:
        raise ValueError(f"labels must be two strings, got {labels!r}")
    return Comparison(token_view(a, choice=choice), token_view(b, choice=choice), (str(labels[0]), str(labels[1])))


def compare_html(a: Any, b: Any, labels: tuple[str, str] = ("A", "B"), *, choice: int = 0) -> str:
    """Both completions as tinted text, then a table with one row per position: each side's
    token and probability, and the difference of log-probabilities (b − a) where the tokens
    agree. Rows whose tokens differ are highlighted and marked ≠."""
    comparison = compare(a, b, labels, choice=choice)
    a, b = comparison.a, comparison.b
    label_a, label_b = (html.escape(label) for label in comparison.labels)
    lines = "".join(
        f'<div style="margin:2px 0"><b style="{_SANS}">{label}</b> {_inline_tokens_html(view)}</div>'
        for label, view in ((label_a, a), (label_b, b))
    )
    header = "".join(
        f'<th style="{_CELL}">{name}</th>'
        for name in ("position", "", f"{label_a} token", f"{label_a} p", f"{label_b} token", f"{label_b} p",
                     f"Δ logprob ({label_b} − {label_a})")
    )
    rows = [_comparison_row(a, b, i) for i in range(max(len(a), len(b)))]
    return (
        f'<div style="line-height:1.6"><div style="{_SANS};margin-bottom:4px">'
        f"{html.escape(_comparison_summary(comparison))}</div>{lines}"
        f'<table style="border-collapse:collapse;margin-top:6px;{_SANS}"><thead><tr>{header}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _comparison_summary(comparison: Comparison) -> str:
    a, b = comparison.a, comparison.b
    label_a, label_b = comparison.labels
    split = comparison.first_divergence
    where = "the same tokens" if split is None else f"first difference at position {split}"
    return (
        f"{label_a}: {len(a)} tokens, perplexity {_format_number(a.perplexity)} · "
        f"{label_b}: {len(b)} tokens, perplexity {_format_number(b.perplexity)} · {where}"
    )


def _inline_tokens_html(view: TokenLogprobs) -> str:
    """Tinted tokens on one line, hover for the probability (no panels: the table has them)."""
    return f'<span style="{_FONT}">' + "".join(
        f'<span title="{_attribute(_quoted(t) + "  " + format_probability(math.exp(lp)))}" '
        f'style="white-space:pre;color:#000;background:{probability_colour(math.exp(lp))};'
        f'border-radius:3px;margin-right:1px">{visible_token_html(t)}</span>'
        for t, lp in zip(view.tokens, view.logprobs)
    ) + "</span>"


def _comparison_row(a: TokenLogprobs, b: TokenLogprobs, i: int) -> str:
    sides = []
    for view in (a, b):
        if i < len(view):
            p = math.exp(view.logprobs[i])
            sides += [
                f'<td style="{_CELL};{_FONT}">{visible_token_html(view.tokens[i])}</td>',
                _probability_cell(p),
            ]
        else:
            sides += [f'<td style="{_CELL}"></td>'] * 2
    same = i < len(a) and i < len(b) and a.tokens[i] == b.tokens[i]
    delta = f"{b.logprobs[i] - a.logprobs[i]:+.3f}" if same else ""
    row_style = "" if same else ' style="background:#fde2e1;color:#000"'
    return (
        f'<tr{row_style}><td style="{_CELL};text-align:right">{i}</td>'
        f'<td style="{_CELL};font-weight:bold">{"" if same else "≠"}</td>{"".join(sides)}'
        f'<td style="{_CELL};text-align:right">{delta}</td></tr>'
    )
