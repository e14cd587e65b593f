// The ChatWidget view: the embedded model picker, the conversation, the input box with
// Send / Stop / Regenerate / Clear, and a collapsible settings row. The kernel owns the
// conversation; this view renders `messages` (plus the streamed deltas, see stream.ts),
// sends requests, and writes only the generation settings and the system prompt.

import type { AnyModel } from "@anywidget/types";
import { copyButton } from "./clipboard";
import { h, setTrait, subscribe } from "./dom";
import { formatStats } from "./format";
import { renderMarkdown } from "./markdown";
import { render as renderPicker } from "./picker";
import { applyEvent, commitTraits, fromTraits, type StreamState } from "./stream";
import type { ChatMessage, ChatRequest, ChatTraits, PickerTraits } from "./types";

export interface ChatProps {
  model: AnyModel<ChatTraits>;
  el: HTMLElement;
}

type NumberTrait = "temperature" | "top_p" | "max_tokens";

export interface NumberSetting {
  trait: NumberTrait;
  className: string;
  label: string;
  min: number;
  max: number;
  step: number;
  integer: boolean;
}

export const NUMBER_SETTINGS: readonly NumberSetting[] = [
  { trait: "temperature", className: "nllm-temperature", label: "Temperature", min: 0, max: 2, step: 0.05, integer: false },
  { trait: "top_p", className: "nllm-top-p", label: "Top p", min: 0, max: 1, step: 0.05, integer: false },
  { trait: "max_tokens", className: "nllm-max-tokens", label: "Max tokens", min: 1, max: 1_000_000, step: 1, integer: true },
];

/** Reads a settings input: the number, or a message saying what is allowed. */
export function parseSetting(setting: NumberSetting, raw: string): { value: number } | { error: string } {
  const value = Number(raw.trim());
  const kind = setting.integer ? "a whole number" : "a number";
  const allowed = `${setting.label} must be ${kind} from ${setting.min} to ${setting.max}`;
  if (raw.trim() === "" || !Number.isFinite(value)) return { error: `${allowed}, got "${raw}"` };
  if (setting.integer && !Number.isInteger(value)) return { error: `${allowed}, got ${value}` };
  if (value < setting.min || value > setting.max) return { error: `${allowed}, got ${value}` };
  return { value };
}

export function chatStatusText(status: string, modelId: string): string {
  if (status === "generating") return modelId ? `Generating with ${modelId}…` : "Generating…";
  if (status === "loading") return "Loading model…";
  return modelId ? `Model: ${modelId}` : "No model selected";
}

const PICKER_REF_PREFIX = "IPY_MODEL_";

/** Renders the picker widget referenced by the `picker` trait into `host`; null when there is none. */
async function mountPicker(model: AnyModel<ChatTraits>, host: HTMLElement): Promise<(() => void) | null> {
  const ref = model.get("picker");
  if (!ref) return null;
  const id = ref.startsWith(PICKER_REF_PREFIX) ? ref.slice(PICKER_REF_PREFIX.length) : ref;
  try {
    const pickerModel = await model.widget_manager.get_model<PickerTraits>(id);
    return renderPicker({ model: pickerModel, el: host });
  } catch (error) {
    console.warn("[notebook_llm] could not render the model picker", error);
    return null;
  }
}

/** One message on screen; `content` is the text its body was last rendered from. */
interface Bubble {
  role: ChatMessage["role"];
  content: string | null;
  element: HTMLDivElement;
  body: HTMLDivElement;
  stats: HTMLDivElement | null;
}

function createBubble(role: ChatMessage["role"], index: number): Bubble {
  const body = h("div", { class: "nllm-message-body" });
  const element = h("div", { class: "nllm-message", "data-role": role, "data-index": index }, body);
  const bubble: Bubble = { role, content: null, element, body, stats: null };
  if (role === "assistant") {
    bubble.stats = h("div", { class: "nllm-stats" });
    const copy = copyButton("nllm-copy-message", "Copy message", () => bubble.content ?? "");
    element.append(h("div", { class: "nllm-message-footer" }, bubble.stats, copy));
  }
  return bubble;
}

function labelled(text: string, control: HTMLElement): HTMLLabelElement {
  return h("label", { class: "nllm-setting" }, h("span", {}, text), control);
}

export async function render({ model, el }: ChatProps): Promise<() => void> {
  const pickerHost = h("div", { class: "nllm-chat-picker" });
  const errorBubble = h("div", { class: "nllm-error", role: "alert" });
  const messageList = h("div", { class: "nllm-messages", role: "log", "aria-live": "polite" }, errorBubble);
  const statusLine = h("div", { class: "nllm-chat-status", role: "status" });
  const input = h("textarea", {
    class: "nllm-input",
    rows: 2,
    placeholder: "Message… (Enter to send, Shift+Enter for a new line)",
    "aria-label": "Message",
  });
  const sendButton = h("button", { class: "nllm-send", type: "button" }, "Send");
  const stopButton = h("button", { class: "nllm-stop", type: "button" }, "Stop");
  const regenerateButton = h("button", { class: "nllm-regenerate", type: "button" }, "Regenerate");
  const clearButton = h("button", { class: "nllm-clear", type: "button" }, "Clear");
  const systemPrompt = h("textarea", { class: "nllm-system-prompt", rows: 3, "aria-label": "System prompt" });
  const numberInputs = NUMBER_SETTINGS.map((setting) => ({
    setting,
    input: h("input", {
      class: setting.className,
      type: "number",
      min: setting.min,
      max: setting.max,
      step: setting.step,
    }),
  }));
  const settings = h(
    "details",
    { class: "nllm-settings" },
    h("summary", {}, "Settings"),
    labelled("System prompt", systemPrompt),
    h("div", { class: "nllm-settings-numbers" }, ...numberInputs.map(({ setting, input }) => labelled(setting.label, input))),
  );
  const root = h(
    "div",
    { class: "nllm-chat" },
    pickerHost,
    messageList,
    h(
      "div",
      { class: "nllm-composer" },
      input,
      h("div", { class: "nllm-buttons" }, sendButton, stopButton, regenerateButton, clearButton),
    ),
    statusLine,
    settings,
  );

  let state: StreamState = fromTraits(traitSnapshot());
  const bubbles: Bubble[] = [];
  let followEnd = true; // false once the user scrolls up, until the next send

  function traitSnapshot() {
    return { messages: model.get("messages"), seq: model.get("seq"), status: model.get("status") };
  }

  function renderMessages(): void {
    const stats = model.get("reply_stats") ?? {};
    state.messages.forEach((message, index) => {
      let bubble = bubbles[index];
      if (!bubble || bubble.role !== message.role) {
        const fresh = createBubble(message.role, index);
        if (bubble) bubble.element.replaceWith(fresh.element);
        else messageList.insertBefore(fresh.element, errorBubble);
        bubble = bubbles[index] = fresh;
      }
      if (bubble.content !== message.content) {
        bubble.body.replaceChildren(renderMarkdown(message.content));
        bubble.content = message.content;
      }
      bubble.element.classList.toggle("is-streaming", index === state.streamingIndex);
      if (bubble.stats) {
        bubble.stats.textContent = formatStats(stats[String(index)]);
        bubble.stats.hidden = !bubble.stats.textContent;
      }
    });
    for (const stale of bubbles.splice(state.messages.length)) stale.element.remove();
    renderError();
  }

  function renderError(): void {
    const error = model.get("error") ?? "";
    errorBubble.textContent = error;
    errorBubble.hidden = !error;
    scrollToEndIfFollowing();
  }

  function renderControls(): void {
    const status = model.get("status");
    const idle = status !== "generating" && status !== "loading";
    sendButton.disabled = !idle;
    stopButton.disabled = status !== "generating";
    regenerateButton.disabled = !idle || !state.messages.some((message) => message.role === "user");
    clearButton.disabled = state.messages.length === 0 && !model.get("error");
    statusLine.textContent = chatStatusText(status, model.get("selected_model_id") ?? "");
    root.classList.toggle("is-generating", status === "generating");
  }

  function scrollToEndIfFollowing(): void {
    if (followEnd) messageList.scrollTop = messageList.scrollHeight;
  }

  function restoreDraft(): void {
    const draft = model.get("draft");
    if (!draft || input.value === draft) return;
    // Keep whatever was typed since the failed send below the returned text.
    input.value = input.value ? `${draft}\n${input.value}` : draft;
  }

  function renderSettings(): void {
    if (document.activeElement !== systemPrompt) systemPrompt.value = model.get("system_prompt") ?? "";
    for (const { setting, input: field } of numberInputs) {
      if (document.activeElement === field) continue;
      field.value = String(model.get(setting.trait));
      markInvalid(field, null);
    }
  }

  function markInvalid(field: HTMLInputElement, error: string | null): void {
    field.classList.toggle("is-invalid", error !== null);
    field.setAttribute("aria-invalid", String(error !== null));
    field.title = error ?? "";
  }

  function send(request: ChatRequest): void {
    model.send(request);
  }

  function sendInput(): void {
    const text = input.value;
    if (!text.trim() || sendButton.disabled) return;
    send({ type: "send", text });
    input.value = "";
    followEnd = true;
  }

  function onTraitsCommitted(): void {
    state = commitTraits(state, traitSnapshot());
    renderMessages();
    renderControls();
  }

  function onKernelMessage(content: unknown): void {
    const next = applyEvent(state, content);
    if (next === state) return;
    state = next;
    renderMessages();
    renderControls();
  }

  input.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
    event.preventDefault();
    sendInput();
  });
  sendButton.addEventListener("click", sendInput);
  stopButton.addEventListener("click", () => send({ type: "stop" }));
  regenerateButton.addEventListener("click", () => {
    followEnd = true;
    send({ type: "regenerate" });
  });
  clearButton.addEventListener("click", () => send({ type: "clear" }));
  messageList.addEventListener("scroll", () => {
    const distanceToEnd = messageList.scrollHeight - messageList.scrollTop - messageList.clientHeight;
    followEnd = distanceToEnd < 32;
  });
  systemPrompt.addEventListener("change", () => setTrait(model, "system_prompt", systemPrompt.value));
  for (const { setting, input: field } of numberInputs) {
    field.addEventListener("change", () => {
      const parsed = parseSetting(setting, field.value);
      markInvalid(field, "error" in parsed ? parsed.error : null);
      if ("value" in parsed) setTrait(model, setting.trait, parsed.value);
    });
  }

  const unsubscribe = subscribe(model, {
    "msg:custom": onKernelMessage,
    "change:messages": onTraitsCommitted,
    "change:seq": onTraitsCommitted,
    "change:status": onTraitsCommitted,
    "change:reply_stats": renderMessages,
    "change:error": () => {
      renderError();
      renderControls();
    },
    "change:draft": restoreDraft,
    "change:selected_model_id": renderControls,
    "change:system_prompt": renderSettings,
    "change:temperature": renderSettings,
    "change:top_p": renderSettings,
    "change:max_tokens": renderSettings,
  });

  renderMessages();
  renderControls();
  renderSettings();
  restoreDraft();
  el.append(root);

  const unmountPicker = await mountPicker(model, pickerHost);

  return () => {
    unsubscribe();
    unmountPicker?.();
    root.remove();
  };
}

export default { render };
