"""Per-token log-probabilities of one completion, read out of any response shape.

Owns `TokenLogprobs` (the record every view draws from), `token_view` (which reads it from what
the user holds: our response dataclasses, their `to_dict()` JSON, the `openai` client's pydantic
objects, a list of streamed chunks) and the numbers derived from it: probabilities, top-k
entropy, perplexity.
Reads responses by field name only, so it imports neither the engine nor wgpu; numpy and the
standard library are its only dependencies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

_MISSING = object()

NO_LOGPROBS_HINT = (
    "request it with logprobs=True, top_logprobs=k (chat) or logprobs=k (text completions)"
)


@dataclass(frozen=True)
class TokenLogprobs:
    """The sampled tokens of one completion with their log-probabilities and top-k alternatives.

    Built by `token_view`; every view in `notebook_llm.viz` accepts it (or anything `token_view`
    accepts). Log-probabilities are natural logarithms, as OpenAI reports them.
    """

    tokens: tuple[str, ...]
    """The sampled tokens' text, in order. - Type: tuple of str"""
    logprobs: tuple[float, ...]
    """Log-probability of each sampled token. - Type: tuple of float, one per token"""
    alternatives: tuple[tuple[tuple[str, float], ...], ...]
    """Per position, the reported most likely tokens as (token, logprob), most likely first.
    - Type: tuple of tuples of (str, float); empty where no top_logprobs were requested"""

    def __post_init__(self):
        if not len(self.tokens) == len(self.logprobs) == len(self.alternatives):
            raise ValueError(
                f"tokens, logprobs and alternatives must have one entry per token; got lengths "
                f"{len(self.tokens)}, {len(self.logprobs)} and {len(self.alternatives)}"
            )

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def text(self) -> str:
        """The completion's text: the tokens joined."""
        return "".join(self.tokens)

    @property
    def probabilities(self) -> np.ndarray:
        """exp(logprob) of each sampled token, float64, shape (n_tokens,)."""
        return np.exp(np.asarray(self.logprobs, dtype=np.float64))

    @property
    def top_k_mass(self) -> np.ndarray:
        """Per position, the total probability of the reported alternatives (how much of the
        distribution the top-k covers); NaN where none were reported. Shape (n_tokens,)."""
        return np.array([
            float(np.exp(np.asarray([lp for _, lp in alts], np.float64)).sum()) if alts else math.nan
            for alts in self.alternatives
        ])

    @property
    def entropy(self) -> np.ndarray:
        """Entropy in nats of the top-k truncation at each position, shape (n_tokens,).

        Computed from the reported alternatives only: their probabilities q_j = exp(l_j) are
        renormalised to sum to 1 (q_j = exp(l_j − logsumexp(l))) and H = −Σ q_j ln q_j. The tail
        the model did not report is left out, so this is a lower bound on the entropy of the
        full next-token distribution when the alternatives are its k most likely tokens (the
        truncated, renormalised distribution majorizes the full one and entropy is
        Schur-concave); it is at most ln k, and equals the full entropy only when the top-k
        hold all the mass. Compare positions of one response, or responses requested with the
        same k. NaN where no alternatives were reported (top_logprobs=0).
        """
        return np.array([_truncated_entropy([lp for _, lp in alts]) for alts in self.alternatives])

    @property
    def perplexity(self) -> float:
        """exp(−mean logprob) over the sampled tokens; NaN for a completion without tokens."""
        if not self.logprobs:
            return math.nan
        return float(np.exp(-np.mean(np.asarray(self.logprobs, dtype=np.float64))))

    def lowest(self, n: int) -> list[int]:
        """Positions of the `n` least probable sampled tokens, least probable first (ties: earlier
        position first)."""
        order = sorted(range(len(self)), key=lambda i: (self.logprobs[i], i))
        return order[: max(n, 0)]

    @classmethod
    def concat(cls, parts: Sequence[TokenLogprobs]) -> TokenLogprobs:
        """One record from consecutive pieces (the chunks of a stream)."""
        return cls(
            tuple(t for p in parts for t in p.tokens),
            tuple(lp for p in parts for lp in p.logprobs),
            tuple(a for p in parts for a in p.alternatives),
        )


def _truncated_entropy(logprobs: list[float]) -> float:
    if not logprobs:
        return math.nan
    values = np.asarray(logprobs, dtype=np.float64)
    values = values - values.max()
    q = np.exp(values) / np.exp(values).sum()
    q = q[q > 0]
    return float(-(q * np.log(q)).sum())


def perplexity(response: Any, *, choice: int = 0) -> float:
    """exp(−mean logprob) of the sampled tokens of `response` (anything `token_view` accepts)."""
    return token_view(response, choice=choice).perplexity


# --- reading responses ------------------------------------------------------------------------


def token_view(response: Any, *, choice: int = 0) -> TokenLogprobs:
    """The tokens, log-probabilities and alternatives of one completion, from any of:

    - a `ChatCompletion` (choice `choice`), a `Choice`, a `ChoiceLogprobs`, or the list of
      `ChatCompletionTokenLogprob` in `choice.logprobs.content`;
    - a legacy `Completion`, `CompletionChoice` or `CompletionLogprobs` (positions without a
      logprob, such as the first token of an echoed prompt, are left out);
    - a list of streamed `ChatCompletionChunk` / `Completion` chunks (choice `choice`, joined);
    - the same shapes as plain dicts (`to_dict()`, JSON from an OpenAI-compatible server) or as
      the `openai` client's objects;
    - a `TokenLogprobs` (returned as is).

    Raises TypeError for anything else, and ValueError for a response that carries no
    log-probabilities (request them with logprobs=True, top_logprobs=k) or has no choice
    `choice`.
    """
    if isinstance(response, TokenLogprobs):
        return response
    if isinstance(response, (str, bytes)):
        raise _not_a_response(response)
    if _has(response, "choices"):
        return _from_choices([response], choice)
    if _has(response, "message") or _has(response, "delta") or (_has(response, "text") and _has(response, "index")):
        return _from_choice(response)
    if _has(response, "tokens") and _has(response, "token_logprobs"):
        return _from_legacy(response)
    if _has(response, "content"):
        return _from_chat_logprobs(response)
    if isinstance(response, Sequence):
        if not response:
            return TokenLogprobs((), (), ())
        first = response[0]
        if _has(first, "token") and _has(first, "logprob"):
            return _from_entries(response)
        if _has(first, "choices"):
            return _from_choices(response, choice)
    raise _not_a_response(response)


def _has(obj: Any, name: str) -> bool:
    if isinstance(obj, Mapping):
        return name in obj
    return not isinstance(obj, (str, bytes, Sequence)) and hasattr(obj, name)


def _get(obj: Any, name: str, default: Any = _MISSING) -> Any:
    value = obj.get(name, default) if isinstance(obj, Mapping) else getattr(obj, name, default)
    if value is _MISSING:
        raise TypeError(f"expected a field {name!r} in {type(obj).__name__}; it has none")
    return value


def _not_a_response(value: Any) -> TypeError:
    return TypeError(
        f"cannot read token log-probabilities from a {type(value).__name__}; pass a ChatCompletion, "
        "Choice, ChoiceLogprobs, list of ChatCompletionTokenLogprob, Completion, CompletionLogprobs, "
        "a list of streamed chunks, or the same shapes as dicts"
    )


def _no_logprobs(what: str) -> ValueError:
    return ValueError(f"this {what} has no logprobs: {NO_LOGPROBS_HINT}")


def _from_choices(responses: Sequence[Any], choice: int) -> TokenLogprobs:
    """Choice `choice` of one response, or of each chunk of a stream, joined. Chunks pick
    choices by their `index` field (a chunk carries only the choices it advances)."""
    if not isinstance(choice, int) or isinstance(choice, bool) or choice < 0:
        raise ValueError(f"choice must be a non-negative int, got {choice!r}")
    parts, seen_choice, counts = [], False, set()
    for response in responses:
        choices = list(_get(response, "choices") or [])
        counts.add(len(choices))
        for position, item in enumerate(choices):
            index = _get(item, "index", None)
            if (position if index is None else index) != choice:
                continue
            seen_choice = True
            logprobs = _get(item, "logprobs", None)
            # a streamed chunk may carry no logprobs (the role chunk, the last one): skip it
            if logprobs is not None and (_has(logprobs, "tokens") or _get(logprobs, "content", None) is not None):
                parts.append(_from_choice(item))
    if not seen_choice:
        n = max(counts, default=0)
        raise ValueError(f"choice={choice} is out of range: this response has {n} choice(s)")
    if not parts:
        raise _no_logprobs("response")
    return parts[0] if len(parts) == 1 else TokenLogprobs.concat(parts)


def _from_choice(item: Any) -> TokenLogprobs:
    logprobs = _get(item, "logprobs", None)
    if logprobs is None:
        raise _no_logprobs("choice")
    if _has(logprobs, "tokens"):
        return _from_legacy(logprobs)
    return _from_chat_logprobs(logprobs)


def _from_chat_logprobs(logprobs: Any) -> TokenLogprobs:
    content = _get(logprobs, "content")
    if content is None:
        raise _no_logprobs("ChoiceLogprobs")
    if isinstance(content, (str, bytes)) or not isinstance(content, Sequence):
        raise _not_a_response(logprobs)
    return _from_entries(content)


def _from_entries(entries: Sequence[Any]) -> TokenLogprobs:
    tokens, logprobs, alternatives = [], [], []
    for entry in entries:
        tokens.append(str(_get(entry, "token")))
        logprobs.append(float(_get(entry, "logprob")))
        top = _get(entry, "top_logprobs", None) or []
        alternatives.append(_ranked((str(_get(t, "token")), float(_get(t, "logprob"))) for t in top))
    return TokenLogprobs(tuple(tokens), tuple(logprobs), tuple(alternatives))


def _from_legacy(logprobs: Any) -> TokenLogprobs:
    tokens = list(_get(logprobs, "tokens") or [])
    values = list(_get(logprobs, "token_logprobs") or [])
    tops = list(_get(logprobs, "top_logprobs", None) or [])
    if len(values) != len(tokens):
        raise ValueError(f"CompletionLogprobs has {len(tokens)} tokens but {len(values)} token_logprobs")
    kept_tokens, kept_values, alternatives = [], [], []
    for i, (token, value) in enumerate(zip(tokens, values)):
        if value is None:  # the first token of an echoed prompt: nothing predicted it
            continue
        top = tops[i] if i < len(tops) and tops[i] else {}
        kept_tokens.append(str(token))
        kept_values.append(float(value))
        alternatives.append(_ranked((str(t), float(lp)) for t, lp in dict(top).items()))
    return TokenLogprobs(tuple(kept_tokens), tuple(kept_values), tuple(alternatives))


def _ranked(pairs) -> tuple[tuple[str, float], ...]:
    """Most likely first; ties keep the reported order (sorted is stable)."""
    return tuple(sorted(pairs, key=lambda pair: -pair[1]))
