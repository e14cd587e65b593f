// The streaming rule of the chat front end, as pure functions over an immutable state.
//
// The kernel streams a reply as `delta` messages numbered by `seq` (+1 per delta, per
// widget, never reset) and, every ~2 s and at the end, commits `messages` and `seq`
// together. `seq` in the traits is the last delta already contained in `messages`, so a
// delta is applied only when its seq is above every seq seen so far; one that arrives
// after the commit that already holds its text is dropped. No DOM here: chat.ts renders
// whatever state these functions return.

import type { ChatEvent, ChatMessage, ChatStatus, DeltaEvent, DoneEvent } from "./types";

export interface StreamState {
  readonly messages: readonly ChatMessage[];
  /** The highest delta seq applied or committed so far. */
  readonly lastSeq: number;
  /** The index of the reply being streamed, or null when none is. */
  readonly streamingIndex: number | null;
}

/** What a view needs from the traits to derive the stream state. */
export interface TraitSnapshot {
  messages: readonly ChatMessage[] | null | undefined;
  seq: number | null | undefined;
  status: ChatStatus | string | null | undefined;
}

function asSeq(seq: number | null | undefined): number {
  return typeof seq === "number" && Number.isFinite(seq) ? seq : 0;
}

/** While generating, a trailing assistant message is the reply in progress. */
function streamingIndexOf(messages: readonly ChatMessage[], status: TraitSnapshot["status"]): number | null {
  const last = messages.length - 1;
  return status === "generating" && last >= 0 && messages[last].role === "assistant" ? last : null;
}

/** The state right after render: everything comes from the traits. */
export function fromTraits(traits: TraitSnapshot): StreamState {
  const messages = traits.messages ?? [];
  return {
    messages,
    lastSeq: asSeq(traits.seq),
    streamingIndex: streamingIndexOf(messages, traits.status),
  };
}

/**
 * The kernel committed `messages`/`seq` (or `status` changed): the traits replace the local
 * text, and deltas at or below the committed seq stay ignored.
 */
export function commitTraits(state: StreamState, traits: TraitSnapshot): StreamState {
  const next = fromTraits(traits);
  return { ...next, lastSeq: Math.max(state.lastSeq, next.lastSeq) };
}

/** Appends a delta's text, or starts a new assistant message when `index == messages.length`. */
export function applyDelta(state: StreamState, delta: DeltaEvent): StreamState {
  if (delta.seq <= state.lastSeq) return state; // already in the committed messages
  const { messages } = state;
  let next: ChatMessage[];
  if (delta.index === messages.length) {
    next = [...messages, { role: "assistant", content: delta.text }];
  } else if (delta.index < messages.length && messages[delta.index].role === "assistant") {
    next = messages.slice();
    next[delta.index] = { role: "assistant", content: messages[delta.index].content + delta.text };
  } else {
    // A gap or a user message: this view missed a commit; the next one repairs it.
    return state;
  }
  return { messages: next, lastSeq: delta.seq, streamingIndex: delta.index };
}

/** The reply ended; its final text arrives (or arrived) with the traits. */
export function applyDone(state: StreamState, done: DoneEvent): StreamState {
  return {
    messages: state.messages,
    lastSeq: Math.max(state.lastSeq, done.seq),
    streamingIndex: state.streamingIndex === done.index ? null : state.streamingIndex,
  };
}

function isIndex(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0;
}

/** Checks a kernel custom message; anything that is not a well-formed delta or done is null. */
export function parseChatEvent(content: unknown): ChatEvent | null {
  if (typeof content !== "object" || content === null) return null;
  const message = content as Record<string, unknown>;
  if (!isIndex(message.seq) || !isIndex(message.index)) return null;
  if (message.type === "delta" && typeof message.text === "string") {
    return { type: "delta", seq: message.seq, index: message.index, text: message.text };
  }
  if (message.type === "done") return { type: "done", seq: message.seq, index: message.index };
  return null;
}

/** Applies one kernel event; unknown or malformed messages leave the state unchanged. */
export function applyEvent(state: StreamState, content: unknown): StreamState {
  const event = parseChatEvent(content);
  if (event === null) return state;
  return event.type === "delta" ? applyDelta(state, event) : applyDone(state, event);
}
