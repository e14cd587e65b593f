"""A matplotlib chart of one completion: log-probability and top-k entropy per position.

matplotlib is optional (the `viz` extra): it is imported inside `plot_logprobs`, never at module
import. The returned `LogprobPlot` carries the figure and a deterministic text/HTML summary,
which is what a notebook test can compare (image bytes differ across matplotlib versions).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from os import PathLike
from typing import Any

import numpy as np

from .html_views import format_probability, visible_token_text
from .logprobs import TokenLogprobs, token_view

_MAX_TICK_LABELS = 48  # beyond this many tokens the x axis shows positions, not token text


@dataclass(frozen=True)
class LogprobPlot:
    """What `plot_logprobs` drew: the figure, its axes, and a summary that displays as text.

    In a notebook the figure shows through matplotlib's inline backend; this object's own
    display (`_repr_html_`, `str()`) is the summary: number of points, perplexity, the least
    probable tokens.
    """

    figure: Any = field(repr=False)
    """The matplotlib Figure. - Type: matplotlib.figure.Figure"""
    logprob_axes: Any = field(repr=False)
    """The axes of the logprob line (one point per token). - Type: matplotlib.axes.Axes"""
    entropy_axes: Any = field(repr=False)
    """The axes of the entropy line: the lower panel, or a twin of `ax`. - Type: matplotlib.axes.Axes"""
    view: TokenLogprobs = field(repr=False)
    """The data plotted. - Type: TokenLogprobs"""
    annotated: tuple[int, ...] = ()
    """Positions annotated with their token, least probable first. - Type: tuple of int"""
    path: str | None = None
    """Where the PNG was saved, if it was. - Type: str or None - Default: None"""

    def summary_lines(self) -> list[str]:
        view = self.view
        lines = [f"{len(view)} points, perplexity {view.perplexity:.2f}"]
        lines += [
            f"position {i}: {visible_token_text(view.tokens[i])} {format_probability(math.exp(view.logprobs[i]))}"
            for i in self.annotated
        ]
        if self.path is not None:
            lines.append(f"saved to {self.path}")
        return lines

    def __str__(self) -> str:
        return "\n".join(self.summary_lines())

    def __repr__(self) -> str:
        return f"LogprobPlot({'; '.join(self.summary_lines())})"

    def _repr_html_(self) -> str:
        view = self.view
        items = "".join(
            f"<li>position {i}: <code>{html.escape(visible_token_text(view.tokens[i]))}</code> "
            f"{format_probability(math.exp(view.logprobs[i]))}</li>"
            for i in self.annotated
        )
        lowest = f"least probable tokens:<ul style=\"margin:2px 0\">{items}</ul>" if items else ""
        saved = f"saved to <code>{html.escape(self.path)}</code>" if self.path is not None else ""
        return (
            f"<div><b>logprob plot</b>: {len(view)} points, perplexity {view.perplexity:.2f}<br>"
            f"{lowest}{saved}</div>"
        )

    def close(self) -> None:
        """Release the figure from pyplot's list of open figures."""
        import matplotlib.pyplot as plt

        plt.close(self.figure)


def plot_logprobs(
    response: Any,
    ax: Any = None,
    annotate: int = 3,
    path: str | PathLike | None = None,
    *,
    choice: int = 0,
) -> LogprobPlot:
    """Plot the log-probability of each sampled token and the top-k entropy at each position.

    Without `ax`, a new figure has two panels sharing the x axis (logprob above, entropy below);
    with `ax`, the logprob goes on `ax` and the entropy on `ax.twinx()`. The `annotate` least
    probable tokens are labelled with their text and probability. Up to 48 tokens, the x axis is
    labelled with the tokens themselves. `path` saves the figure as PNG. Entropy is that of the
    top-k truncation (see `TokenLogprobs.entropy`): a lower bound, missing where no
    alternatives were requested.
    """
    import matplotlib.pyplot as plt

    if not isinstance(annotate, int) or isinstance(annotate, bool) or annotate < 0:
        raise ValueError(f"annotate must be a non-negative int, got {annotate!r}")
    view = token_view(response, choice=choice)
    if not len(view):
        raise ValueError("this completion has no tokens to plot")
    if ax is None:
        width = float(np.clip(2.0 + 0.32 * len(view), 6.0, 16.0))
        figure, (logprob_axes, entropy_axes) = plt.subplots(
            2, 1, sharex=True, figsize=(width, 5.0), height_ratios=(3, 2), layout="constrained"
        )
    else:
        logprob_axes, entropy_axes, figure = ax, ax.twinx(), ax.figure
    _draw_logprobs(logprob_axes, view)
    _draw_entropy(entropy_axes, view)
    lowest = tuple(view.lowest(annotate))
    _label_tokens(logprob_axes, view, lowest)
    _token_ticks(logprob_axes if ax is not None else entropy_axes, view)

    saved = None
    if path is not None:
        figure.savefig(path, dpi=120)
        saved = str(path)
    return LogprobPlot(figure, logprob_axes, entropy_axes, view, lowest, saved)


def _draw_logprobs(axes, view: TokenLogprobs) -> None:
    positions = np.arange(len(view))
    axes.plot(positions, view.logprobs, marker="o", color="tab:blue", label="logprob of the sampled token")
    axes.set_ylabel("logprob (nats)", color="tab:blue")
    axes.set_ylim(_logprob_limits(view))
    axes.grid(True, alpha=0.3)
    axes.set_title(f"{len(view)} tokens · perplexity {view.perplexity:.2f}")


def _draw_entropy(axes, view: TokenLogprobs) -> None:
    """The entropy line, and a dotted line at ln k: the most a top-k entropy can be (k equally
    likely alternatives)."""
    axes.plot(np.arange(len(view)), view.entropy, marker="s", color="tab:orange", label="top-k entropy")
    axes.set_ylabel("top-k entropy (nats)", color="tab:orange")
    widest = max(len(a) for a in view.alternatives)
    if widest > 1:
        axes.axhline(math.log(widest), color="tab:orange", linestyle=":", linewidth=1)
        axes.annotate(f"ln {widest}", (1.0, math.log(widest)), xycoords=("axes fraction", "data"),
                      xytext=(-2, 2), textcoords="offset points", ha="right", va="bottom",
                      fontsize=8, color="tab:orange")
    top = max(math.log(max(widest, 2)), float(np.nanmax(view.entropy, initial=0.0)))
    axes.set_ylim(0, top * 1.15)  # room above the ln k label


def _label_tokens(axes, view: TokenLogprobs, positions: tuple[int, ...]) -> None:
    """Each position's token and probability under its point (text, never mathtext: a token
    may hold `$`)."""
    for i, depth in _label_depths(positions).items():
        axes.annotate(
            f"{visible_token_text(view.tokens[i])}\n{format_probability(math.exp(view.logprobs[i]))}",
            (i, view.logprobs[i]), xytext=(0, -8 - 26 * depth), textcoords="offset points", ha="center", va="top",
            fontsize=8, color="tab:red", parse_math=False,
            arrowprops={"arrowstyle": "-", "color": "tab:red", "linewidth": 0.5} if depth else None,
        )


def _token_ticks(axes, view: TokenLogprobs) -> None:
    if len(view) <= _MAX_TICK_LABELS:
        axes.set_xticks(np.arange(len(view)))
        axes.set_xticklabels([visible_token_text(t) for t in view.tokens], rotation=90, fontsize=8,
                             parse_math=False)
    axes.set_xlabel("position (token)")


def _label_depths(positions: tuple[int, ...]) -> dict[int, int]:
    """0 or 1 per annotated position, in the order given: a label one or two positions from the
    previous one (left to right) goes one step lower than it, so neighbours do not overlap."""
    depths: dict[int, int] = {}
    previous = None
    for i in sorted(positions):
        depths[i] = 1 - depths[previous] if previous is not None and i - previous <= 2 else 0
        previous = i
    return {i: depths[i] for i in positions}


def _logprob_limits(view: TokenLogprobs) -> tuple[float, float]:
    """From a little above 0 down to past the lowest point, with room below it for the labels."""
    low = min(min(view.logprobs), -1.0)
    if not math.isfinite(low):
        low = -30.0  # a logprob of -inf (a token the model gave no mass): keep the axis finite
    return (low * 1.5, 0.1 * abs(low) + 0.05)
