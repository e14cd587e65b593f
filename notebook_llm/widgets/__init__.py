"""Notebook widgets (anywidget): `ModelPicker` and `ChatWidget`. Front ends only: they reach
models through `Engine` and the registry, never through wgpu; their views are the TypeScript in
`js/`, bundled into `notebook_llm/static/`.

The kernel is the source of truth. The front end edits a few traits (marked "front end sets
it" below) and asks for everything else with custom messages; a kernel-owned trait set by the
front end, a value a validator rejects, or a malformed message is logged as a warning and
ignored (rejected trait values are sent back so the view shows the kernel's value again).

Why `selected_model_id` and not `model_id`: ipywidgets' `Widget.model_id` is the widget's comm
id (widget references, `_repr_mimebundle_` and the constructor's `model_id=` keyword use it), so
a trait of that name would break the display and the chat's reference to its picker.

ModelPicker — synced traits
    models             list of dicts, one per registry record (kernel): model_id, family,
                       quantization, parameters, size_mb (MiB of weights on disk, else the
                       download's estimate), vram_required_MB, required_features,
                       low_resource_required, model_type, context_window_size (int or null),
                       cached (on disk or downloaded), runnable, reason ("" when runnable)
    selected_model_id  the chosen model (front end sets it when a row is clicked)
    loaded_model_id    what the engine has loaded, "" when nothing
    status             "unloaded" | "loading" | "loaded" | "error"
    progress           {"progress": 0..1, "time_elapsed": s, "text": str}, the last load report;
                       at most ~10 updates a second, the last report always arrives
    error              why the last load failed ("load cancelled" after Cancel), "" when none
    adapter            the GPU adapter's description
  front end → kernel: {"type": "load", "model_id": str} ("" loads the selected model),
    {"type": "cancel"}, {"type": "unload"}, {"type": "refresh"} (recompute models and what is
    loaded). Kernel → front end: traits only.

ChatWidget — synced traits
    messages           the conversation without the system prompt, [{"role": "user"|"assistant",
                       "content": str}]; committed at the start of a reply, every
                       `commit_interval` (~2 s) while it streams (the reply so far is the last
                       entry) and at its end
    system_prompt, temperature ([0, 2]), top_p ((0, 1]), max_tokens (>= 1)
                       front end sets them; the next request uses them
    status             "idle" | "generating" | "loading" (the picker is loading a model)
    error              why the last action failed, "" hides it; cleared by the next send
    draft              text for the input box after a send that failed (kernel sets it)
    seq                the last delta's seq whose text `messages` holds
    reply_stats        str(message index) → {"prompt_tokens", "completion_tokens", "seconds",
                       "ttft_s", "tokens_per_s", "finish_reason"} (null where unknown)
    selected_model_id  the model requests go to, linked to the picker's selected_model_id
    picker             the embedded ModelPicker ("IPY_MODEL_<comm id>", widget_serialization)
  front end → kernel: {"type": "send", "text": str}, {"type": "stop"}, {"type": "regenerate"},
    {"type": "clear"}.
  kernel → front end:
    {"type": "delta", "seq": int, "index": int, "text": str}: append text to messages[index]
      (index == len(messages) starts a new assistant message). seq grows by 1 per delta, per
      widget, and never resets; deltas are batched every `delta_interval` (~40 ms).
    {"type": "done", "seq": int, "index": int}: the reply at index ended; its final text, stats
      and status were committed just before. seq is the last delta's (done takes no number).
  A view applies a delta only when its seq is above the highest seq it has seen, and rebuilds
  from `messages` when `messages`/`seq` change: the kernel flushes pending text as a delta
  before each commit and commits `messages` and `seq` in one update, so every view ends with
  the kernel's text and none repeats any. Seqs are consecutive, so a view rendered between a
  delta and the next commit can also skip deltas until `seq == lastSeq + 1` holds again (the
  next commit), rather than show the text with a gap until then.

Failures: a send that cannot start (empty text, a reply running, a model loading or none
loaded) or a request the engine refuses (e.g. the prompt overflows the context window) removes
the user message again, puts its text in `draft` and the reason in `error`. A failure after
text has arrived keeps the partial reply (finish_reason "error"). Stop keeps the partial reply
(finish_reason "abort"). The widget stays usable after all of them.
"""

from .chat import ChatWidget
from .picker import ModelPicker

__all__ = ["ChatWidget", "ModelPicker"]
