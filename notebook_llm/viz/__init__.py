"""Views of token log-probabilities: heatmap, alternatives table, plot, comparison, perplexity.

    from notebook_llm.viz import Heatmap, plot_logprobs
    reply = engine.chat.completions.create(messages=..., logprobs=True, top_logprobs=5)
    Heatmap(reply)          # tokens tinted by probability; hover or click for alternatives

A front end: reads response objects (ours, their dicts, the openai client's) by field name and
never imports the engine or wgpu. HTML is deterministic and needs no JavaScript; matplotlib is
imported only by `plot_logprobs`.
"""

from .html_views import (
    Comparison,
    Heatmap,
    alternatives_table_html,
    compare,
    compare_html,
    format_probability,
    heatmap_html,
    probability_colour,
    visible_token_text,
)
from .logprobs import TokenLogprobs, perplexity, token_view
from .plot import LogprobPlot, plot_logprobs

__all__ = [
    "Comparison", "Heatmap", "LogprobPlot", "TokenLogprobs", "alternatives_table_html", "compare", "compare_html",
    "format_probability", "heatmap_html", "perplexity", "plot_logprobs", "probability_colour", "token_view",
    "visible_token_text",
]
