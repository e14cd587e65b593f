// @vitest-environment jsdom
// jsdom rather than happy-dom: message bodies go through DOMPurify, which does not
// support happy-dom (see markdown.test.ts).

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { chatStatusText, NUMBER_SETTINGS, parseSetting, render } from "../src/chat";
import type { ChatMessage, ChatTraits, PickerTraits } from "../src/types";
import { chatTraits, FakeModel, pickerTraits } from "./fake_model";

let el: HTMLDivElement;
let model: FakeModel<ChatTraits>;
let picker: FakeModel<PickerTraits>;
let cleanup: () => void;

const user = (content: string): ChatMessage => ({ role: "user", content });
const assistant = (content: string): ChatMessage => ({ role: "assistant", content });

async function mount(overrides: Partial<ChatTraits> = {}): Promise<void> {
  const registry = new Map<string, FakeModel<any>>();
  picker = new FakeModel(pickerTraits(), registry);
  registry.set("picker-1", picker);
  model = new FakeModel(chatTraits({ picker: "IPY_MODEL_picker-1", ...overrides }), registry);
  cleanup = await render({ model, el });
}

const $ = <E extends Element = HTMLElement>(selector: string) => el.querySelector<E>(selector)!;
const $$ = (selector: string) => [...el.querySelectorAll<HTMLElement>(selector)];
const button = (name: string) => $<HTMLButtonElement>(`button.nllm-${name}`);
const input = () => $<HTMLTextAreaElement>("textarea.nllm-input");
const bodyText = (index: number) => $(`.nllm-message[data-index="${index}"] .nllm-message-body`).textContent!.trim();

function type(text: string): void {
  input().value = text;
  input().dispatchEvent(new Event("input"));
}

function pressEnter(options: KeyboardEventInit = {}): KeyboardEvent {
  const event = new KeyboardEvent("keydown", { key: "Enter", bubbles: true, cancelable: true, ...options });
  input().dispatchEvent(event);
  return event;
}

function changeInput(selector: string, value: string): void {
  const field = $<HTMLInputElement | HTMLTextAreaElement>(selector);
  field.value = value;
  field.dispatchEvent(new Event("change"));
}

beforeEach(() => {
  el = document.createElement("div");
  document.body.append(el);
});

afterEach(() => {
  cleanup?.();
  el.remove();
  vi.unstubAllGlobals();
});

describe("messages", () => {
  it("renders one bubble per message with its role and index", async () => {
    await mount({ messages: [user("Hi"), assistant("Hello **there**")] });
    const bubbles = $$(".nllm-message");
    expect(bubbles.map((b) => [b.dataset.role, b.dataset.index])).toEqual([
      ["user", "0"],
      ["assistant", "1"],
    ]);
    expect(bodyText(0)).toBe("Hi");
    expect($('.nllm-message[data-index="1"] .nllm-message-body strong').textContent).toBe("there");
  });

  it("shows the stats line of a reply", async () => {
    await mount({
      messages: [user("Hi"), assistant("Hello")],
      reply_stats: { "1": { completion_tokens: 42, tokens_per_s: 12.3, ttft_s: 0.45, finish_reason: "stop" } },
    });
    expect($('.nllm-message[data-index="1"] .nllm-stats').textContent).toBe(
      "42 tokens · 12.3 tok/s · first token 0.45 s",
    );
  });

  it("rebuilds the list when the kernel replaces the messages", async () => {
    await mount({ messages: [user("Hi"), assistant("Hello")] });
    model.kernelUpdate({ messages: [user("Other")], seq: 0 });
    expect($$(".nllm-message")).toHaveLength(1);
    expect(bodyText(0)).toBe("Other");
    model.kernelUpdate({ messages: [] });
    expect($$(".nllm-message")).toHaveLength(0);
  });

  it("keeps a bubble whose text did not change", async () => {
    await mount({ messages: [user("Hi"), assistant("Hello")] });
    const first = $('.nllm-message[data-index="0"]');
    model.kernelUpdate({ messages: [user("Hi"), assistant("Hello again")] });
    expect($('.nllm-message[data-index="0"]')).toBe(first);
    expect(bodyText(1)).toBe("Hello again");
  });

  it("copies a reply's Markdown source with its copy button", async () => {
    const writeText = vi.fn().mockResolvedValue(undefined);
    vi.stubGlobal("navigator", { clipboard: { writeText } });
    await mount({ messages: [user("Hi"), assistant("Use `x`")] });
    $<HTMLButtonElement>('.nllm-message[data-index="1"] button.nllm-copy-message').click();
    await vi.waitFor(() => expect(writeText).toHaveBeenCalledWith("Use `x`"));
  });

  it("has no copy button on user messages", async () => {
    await mount({ messages: [user("Hi")] });
    expect($('.nllm-message[data-index="0"] .nllm-copy-message')).toBeNull();
  });
});

describe("sanitizing message text", () => {
  it("renders no event handler and no script from raw HTML in a message", async () => {
    await mount({
      messages: [user("show me"), assistant('look <img src=x onerror=alert(1)> and <script>alert(2)</script>')],
    });
    const body = $('.nllm-message[data-index="1"] .nllm-message-body');
    expect(body.querySelector("script")).toBeNull();
    expect(body.querySelector("[onerror]")).toBeNull();
    expect(body.innerHTML).not.toContain("onerror");
    expect(el.querySelector("script")).toBeNull();
  });

  it("sanitizes streamed text too", async () => {
    await mount({ messages: [user("q")], status: "generating" });
    model.emitCustom({ type: "delta", seq: 1, index: 1, text: "<img src=x " });
    model.emitCustom({ type: "delta", seq: 2, index: 1, text: "onerror=alert(1)>" });
    expect(el.querySelector("[onerror]")).toBeNull();
  });
});

describe("streaming", () => {
  it("starts a streaming bubble for a delta at the end and appends later deltas", async () => {
    await mount({ messages: [user("Hi")], status: "generating" });
    model.emitCustom({ type: "delta", seq: 1, index: 1, text: "Hel" });
    const bubble = $('.nllm-message[data-index="1"]');
    expect(bubble.dataset.role).toBe("assistant");
    expect(bubble.classList.contains("is-streaming")).toBe(true);
    model.emitCustom({ type: "delta", seq: 2, index: 1, text: "lo" });
    expect(bodyText(1)).toBe("Hello");
  });

  it("ignores deltas already contained in committed traits", async () => {
    await mount({ messages: [user("Hi")], status: "generating" });
    model.emitCustom({ type: "delta", seq: 1, index: 1, text: "Hel" });
    model.kernelUpdate({ messages: [user("Hi"), assistant("Hello")], seq: 2 });
    model.emitCustom({ type: "delta", seq: 2, index: 1, text: "lo" }); // late, already committed
    expect(bodyText(1)).toBe("Hello");
    model.emitCustom({ type: "delta", seq: 3, index: 1, text: "!" });
    expect(bodyText(1)).toBe("Hello!");
  });

  it("takes lastSeq from the seq trait on render", async () => {
    await mount({ messages: [user("Hi"), assistant("Hello")], seq: 5, status: "generating" });
    model.emitCustom({ type: "delta", seq: 5, index: 1, text: " stale" });
    expect(bodyText(1)).toBe("Hello");
    model.emitCustom({ type: "delta", seq: 6, index: 1, text: " world" });
    expect(bodyText(1)).toBe("Hello world");
  });

  it("ends streaming on done", async () => {
    await mount({ messages: [user("Hi")], status: "generating" });
    model.emitCustom({ type: "delta", seq: 1, index: 1, text: "Hello" });
    model.kernelUpdate({ messages: [user("Hi"), assistant("Hello")], seq: 1, status: "idle" });
    model.emitCustom({ type: "done", seq: 1, index: 1 });
    expect($('.nllm-message[data-index="1"]').classList.contains("is-streaming")).toBe(false);
    expect(bodyText(1)).toBe("Hello");
  });

  it("clears the streaming mark on done even before the status trait changes", async () => {
    await mount({ messages: [user("Hi")], status: "generating" });
    model.emitCustom({ type: "delta", seq: 1, index: 1, text: "Hello" });
    model.emitCustom({ type: "done", seq: 1, index: 1 });
    expect($('.nllm-message[data-index="1"]').classList.contains("is-streaming")).toBe(false);
  });

  it("ignores malformed kernel messages", async () => {
    await mount({ messages: [user("Hi")], status: "generating" });
    model.emitCustom({ type: "delta", seq: "1", index: 1, text: "x" });
    model.emitCustom("garbage");
    expect($$(".nllm-message")).toHaveLength(1);
  });

  it("renders a code block streamed in pieces with a copy button", async () => {
    await mount({ messages: [user("code?")], status: "generating" });
    model.emitCustom({ type: "delta", seq: 1, index: 1, text: "```py\nprint(1)" });
    model.emitCustom({ type: "delta", seq: 2, index: 1, text: "\n```\n" });
    expect($('.nllm-message[data-index="1"] .nllm-code button.nllm-copy-code')).not.toBeNull();
    expect($('.nllm-message[data-index="1"] pre code').textContent).toBe("print(1)\n");
  });
});

describe("input box", () => {
  it("sends the text on Enter and clears the box", async () => {
    await mount();
    type("Hello there");
    const event = pressEnter();
    expect(event.defaultPrevented).toBe(true);
    expect(model.sent).toEqual([{ type: "send", text: "Hello there" }]);
    expect(input().value).toBe("");
  });

  it("does not send on Shift+Enter", async () => {
    await mount();
    type("line one");
    const event = pressEnter({ shiftKey: true });
    expect(event.defaultPrevented).toBe(false);
    expect(model.sent).toEqual([]);
    expect(input().value).toBe("line one");
  });

  it("does not send while an input method is composing", async () => {
    await mount();
    type("にほん");
    pressEnter({ isComposing: true });
    expect(model.sent).toEqual([]);
  });

  it("does not send blank text", async () => {
    await mount();
    type("   ");
    pressEnter();
    expect(model.sent).toEqual([]);
  });

  it("does not send while a reply is generating", async () => {
    await mount({ status: "generating", messages: [user("Hi")] });
    type("next");
    pressEnter();
    expect(model.sent).toEqual([]);
    expect(input().value).toBe("next");
  });

  it("sends with the Send button", async () => {
    await mount();
    type("via button");
    button("send").click();
    expect(model.sent).toEqual([{ type: "send", text: "via button" }]);
  });

  it("restores the draft on render", async () => {
    await mount({ draft: "lost text" });
    expect(input().value).toBe("lost text");
  });

  it("restores the draft the kernel sends back after a failed send", async () => {
    await mount();
    type("my question");
    pressEnter();
    model.kernelUpdate({ draft: "my question", error: "No model is loaded" });
    expect(input().value).toBe("my question");
  });

  it("keeps text typed after the failed send", async () => {
    await mount();
    type("first");
    pressEnter();
    type("second");
    model.kernelUpdate({ draft: "first" });
    expect(input().value).toBe("first\nsecond");
  });
});

describe("error bubble", () => {
  it("shows the error after the last message and hides it when cleared", async () => {
    await mount({ messages: [user("Hi")] });
    const error = $(".nllm-error");
    expect(error.hidden).toBe(true);
    model.kernelUpdate({ error: "No model is loaded: press Load first" });
    expect(error.hidden).toBe(false);
    expect(error.textContent).toBe("No model is loaded: press Load first");
    expect(error.previousElementSibling).toBe($('.nllm-message[data-index="0"]'));
    model.kernelUpdate({ error: "" });
    expect(error.hidden).toBe(true);
  });

  it("stays after the messages when a reply starts streaming", async () => {
    await mount({ messages: [user("Hi")], status: "generating", error: "warning" });
    model.emitCustom({ type: "delta", seq: 1, index: 1, text: "x" });
    expect($(".nllm-messages").lastElementChild).toBe($(".nllm-error"));
  });
});

describe("buttons", () => {
  it("enable according to status", async () => {
    await mount({ messages: [user("Hi"), assistant("Hello")] });
    expect(button("send").disabled).toBe(false);
    expect(button("stop").disabled).toBe(true);
    expect(button("regenerate").disabled).toBe(false);
    expect(button("clear").disabled).toBe(false);

    model.kernelUpdate({ status: "generating" });
    expect(button("send").disabled).toBe(true);
    expect(button("stop").disabled).toBe(false);
    expect(button("regenerate").disabled).toBe(true);
    expect(button("clear").disabled).toBe(false);

    model.kernelUpdate({ status: "loading" });
    expect(button("send").disabled).toBe(true);
    expect(button("stop").disabled).toBe(true);
  });

  it("disable Regenerate and Clear on an empty conversation", async () => {
    await mount();
    expect(button("regenerate").disabled).toBe(true);
    expect(button("clear").disabled).toBe(true);
  });

  it("send stop, regenerate and clear", async () => {
    await mount({ messages: [user("Hi"), assistant("Hello")] });
    button("regenerate").click();
    button("clear").click();
    model.kernelUpdate({ status: "generating" });
    button("stop").click();
    expect(model.sent).toEqual([{ type: "regenerate" }, { type: "clear" }, { type: "stop" }]);
  });

  it("show the status line", async () => {
    await mount();
    expect($(".nllm-chat-status").textContent).toBe("Model: SmolLM2-135M-Instruct-Q4_1");
    model.kernelUpdate({ status: "generating" });
    expect($(".nllm-chat-status").textContent).toBe("Generating with SmolLM2-135M-Instruct-Q4_1…");
    expect(chatStatusText("loading", "x")).toBe("Loading model…");
    expect(chatStatusText("idle", "")).toBe("No model selected");
  });
});

describe("settings", () => {
  it("show the traits' values", async () => {
    await mount();
    expect($<HTMLTextAreaElement>("textarea.nllm-system-prompt").value).toBe("You are a helpful assistant.");
    expect($<HTMLInputElement>("input.nllm-temperature").value).toBe("0.7");
    expect($<HTMLInputElement>("input.nllm-top-p").value).toBe("0.95");
    expect($<HTMLInputElement>("input.nllm-max-tokens").value).toBe("512");
  });

  it("set the system prompt", async () => {
    await mount();
    changeInput("textarea.nllm-system-prompt", "Answer in French.");
    expect(model.get("system_prompt")).toBe("Answer in French.");
    expect(model.saveCount).toBe(1);
  });

  it("set valid numbers", async () => {
    await mount();
    changeInput("input.nllm-temperature", "0.2");
    changeInput("input.nllm-top-p", "0.5");
    changeInput("input.nllm-max-tokens", "128");
    expect([model.get("temperature"), model.get("top_p"), model.get("max_tokens")]).toEqual([0.2, 0.5, 128]);
    expect(model.saveCount).toBe(3);
  });

  it("reject invalid numbers without touching the traits", async () => {
    await mount();
    changeInput("input.nllm-temperature", "5");
    changeInput("input.nllm-max-tokens", "12.5");
    expect(model.get("temperature")).toBe(0.7);
    expect(model.get("max_tokens")).toBe(512);
    expect(model.saveCount).toBe(0);
    const temperature = $<HTMLInputElement>("input.nllm-temperature");
    expect(temperature.classList.contains("is-invalid")).toBe(true);
    expect(temperature.title).toContain("Temperature must be a number from 0 to 2");
    changeInput("input.nllm-temperature", "1");
    expect(temperature.classList.contains("is-invalid")).toBe(false);
    expect(model.get("temperature")).toBe(1);
  });

  it("follow values set from Python", async () => {
    await mount();
    model.kernelUpdate({ temperature: 0.1, system_prompt: "Be brief." });
    expect($<HTMLInputElement>("input.nllm-temperature").value).toBe("0.1");
    expect($<HTMLTextAreaElement>("textarea.nllm-system-prompt").value).toBe("Be brief.");
  });

  it("parseSetting names the field, the value and the range", () => {
    const [temperature, , maxTokens] = NUMBER_SETTINGS;
    expect(parseSetting(temperature, "0.5")).toEqual({ value: 0.5 });
    expect(parseSetting(temperature, "")).toEqual({ error: 'Temperature must be a number from 0 to 2, got ""' });
    expect(parseSetting(temperature, "abc")).toHaveProperty("error");
    expect(parseSetting(temperature, "-0.1")).toHaveProperty("error");
    expect(parseSetting(maxTokens, "0")).toEqual({ error: "Max tokens must be a whole number from 1 to 1000000, got 0" });
    expect(parseSetting(maxTokens, "64")).toEqual({ value: 64 });
  });
});

describe("embedded picker", () => {
  it("renders the picker referenced by the picker trait", async () => {
    await mount();
    expect($(".nllm-chat-picker .nllm-picker")).not.toBeNull();
    $<HTMLButtonElement>(".nllm-chat-picker button.nllm-load").click();
    expect(picker.sent).toEqual([{ type: "load", model_id: "SmolLM2-135M-Instruct-Q4_1" }]);
  });

  it("is skipped when the picker trait is empty", async () => {
    await mount({ picker: "" });
    expect($(".nllm-picker")).toBeNull();
    expect($(".nllm-chat")).not.toBeNull();
  });

  it("is skipped, with a warning, when the widget manager has no such model", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    await mount({ picker: "IPY_MODEL_missing" });
    expect($(".nllm-picker")).toBeNull();
    expect(warn).toHaveBeenCalled();
    warn.mockRestore();
  });
});

describe("cleanup", () => {
  it("removes the listeners of the chat and of the embedded picker", async () => {
    await mount();
    expect(model.listenerCount()).toBeGreaterThan(0);
    expect(picker.listenerCount()).toBeGreaterThan(0);
    cleanup();
    expect(model.listenerCount()).toBe(0);
    expect(picker.listenerCount()).toBe(0);
    expect(el.querySelector(".nllm-chat")).toBeNull();
  });
});
