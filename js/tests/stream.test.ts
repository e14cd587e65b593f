import { describe, expect, it } from "vitest";
import {
  applyDelta,
  applyDone,
  applyEvent,
  commitTraits,
  fromTraits,
  parseChatEvent,
  type StreamState,
} from "../src/stream";
import type { ChatMessage } from "../src/types";

const user = (content: string): ChatMessage => ({ role: "user", content });
const assistant = (content: string): ChatMessage => ({ role: "assistant", content });
const delta = (seq: number, index: number, text: string) => ({ type: "delta" as const, seq, index, text });

describe("fromTraits", () => {
  it("takes lastSeq from the seq trait", () => {
    const state = fromTraits({ messages: [user("hi"), assistant("hello")], seq: 7, status: "idle" });
    expect(state.lastSeq).toBe(7);
    expect(state.messages).toHaveLength(2);
  });

  it("marks a trailing assistant message as streaming while generating", () => {
    const state = fromTraits({ messages: [user("hi"), assistant("hel")], seq: 2, status: "generating" });
    expect(state.streamingIndex).toBe(1);
  });

  it("marks nothing as streaming when the last message is the user's", () => {
    const state = fromTraits({ messages: [user("hi")], seq: 0, status: "generating" });
    expect(state.streamingIndex).toBeNull();
  });

  it("marks nothing as streaming when idle", () => {
    const state = fromTraits({ messages: [user("hi"), assistant("hello")], seq: 0, status: "idle" });
    expect(state.streamingIndex).toBeNull();
  });

  it("treats missing traits as an empty conversation at seq 0", () => {
    const state = fromTraits({ messages: undefined, seq: undefined, status: undefined });
    expect(state).toEqual({ messages: [], lastSeq: 0, streamingIndex: null });
  });
});

describe("applyDelta", () => {
  const base = fromTraits({ messages: [user("hi"), assistant("Hel")], seq: 4, status: "generating" });

  it("appends text to the assistant message at index", () => {
    const next = applyDelta(base, delta(5, 1, "lo"));
    expect(next.messages[1].content).toBe("Hello");
    expect(next.lastSeq).toBe(5);
    expect(next.streamingIndex).toBe(1);
  });

  it("starts a new assistant message when index equals the message count", () => {
    const state = fromTraits({ messages: [user("hi")], seq: 0, status: "generating" });
    const next = applyDelta(state, delta(1, 1, "Hi"));
    expect(next.messages).toEqual([user("hi"), assistant("Hi")]);
    expect(next.streamingIndex).toBe(1);
  });

  it("leaves the previous state untouched", () => {
    applyDelta(base, delta(5, 1, "lo"));
    expect(base.messages[1].content).toBe("Hel");
    expect(base.lastSeq).toBe(4);
  });

  it("ignores a delta whose seq is not above lastSeq", () => {
    expect(applyDelta(base, delta(4, 1, "lo"))).toBe(base);
    expect(applyDelta(base, delta(3, 1, "lo"))).toBe(base);
  });

  it("applies each seq once", () => {
    const once = applyDelta(base, delta(5, 1, "lo"));
    const twice = applyDelta(once, delta(5, 1, "lo"));
    expect(twice).toBe(once);
    expect(twice.messages[1].content).toBe("Hello");
  });

  it("accepts a gap in seq (a lost delta is repaired by the next commit)", () => {
    const next = applyDelta(base, delta(9, 1, "p"));
    expect(next.messages[1].content).toBe("Help");
    expect(next.lastSeq).toBe(9);
  });

  it("ignores a delta aimed at a user message", () => {
    expect(applyDelta(base, delta(5, 0, "x"))).toBe(base);
  });

  it("ignores a delta beyond the end of the conversation", () => {
    expect(applyDelta(base, delta(5, 3, "x"))).toBe(base);
  });
});

describe("commitTraits", () => {
  it("replaces the local text with the committed messages", () => {
    let state = fromTraits({ messages: [user("hi")], seq: 0, status: "generating" });
    state = applyDelta(state, delta(1, 1, "Hel"));
    state = commitTraits(state, { messages: [user("hi"), assistant("Hello")], seq: 2, status: "generating" });
    expect(state.messages[1].content).toBe("Hello");
    expect(state.lastSeq).toBe(2);
  });

  it("drops a delta that arrives after the commit already holding its text", () => {
    let state = fromTraits({ messages: [user("hi")], seq: 0, status: "generating" });
    state = applyDelta(state, delta(1, 1, "Hel"));
    state = commitTraits(state, { messages: [user("hi"), assistant("Hello")], seq: 2, status: "generating" });
    state = applyDelta(state, delta(2, 1, "lo")); // late: already in the commit
    expect(state.messages[1].content).toBe("Hello");
    state = applyDelta(state, delta(3, 1, " there"));
    expect(state.messages[1].content).toBe("Hello there");
  });

  it("keeps the higher local lastSeq when the commit is older than the deltas seen", () => {
    let state = fromTraits({ messages: [user("hi"), assistant("")], seq: 0, status: "generating" });
    state = applyDelta(state, delta(1, 1, "a"));
    state = applyDelta(state, delta(2, 1, "b"));
    state = applyDelta(state, delta(3, 1, "c"));
    state = commitTraits(state, { messages: [user("hi"), assistant("ab")], seq: 2, status: "generating" });
    expect(state.lastSeq).toBe(3);
    // Delta 3 is not replayed; the next commit brings its text.
    expect(applyDelta(state, delta(3, 1, "c"))).toBe(state);
  });

  it("stops marking the reply as streaming once status is idle", () => {
    let state = fromTraits({ messages: [user("hi"), assistant("He")], seq: 1, status: "generating" });
    state = commitTraits(state, { messages: [user("hi"), assistant("Hello")], seq: 3, status: "idle" });
    expect(state.streamingIndex).toBeNull();
  });

  it("follows a cleared conversation", () => {
    let state = fromTraits({ messages: [user("hi"), assistant("Hello")], seq: 5, status: "idle" });
    state = commitTraits(state, { messages: [], seq: 5, status: "idle" });
    expect(state.messages).toEqual([]);
    expect(applyDelta(state, delta(6, 0, "new")).messages).toEqual([assistant("new")]);
  });
});

describe("applyDone", () => {
  it("ends streaming of that reply", () => {
    let state = fromTraits({ messages: [user("hi")], seq: 0, status: "generating" });
    state = applyDelta(state, delta(1, 1, "Hi"));
    state = applyDone(state, { type: "done", seq: 1, index: 1 });
    expect(state.streamingIndex).toBeNull();
    expect(state.messages[1].content).toBe("Hi");
  });

  it("does not end streaming of a different reply", () => {
    let state = fromTraits({ messages: [user("hi")], seq: 0, status: "generating" });
    state = applyDelta(state, delta(1, 1, "Hi"));
    expect(applyDone(state, { type: "done", seq: 1, index: 3 }).streamingIndex).toBe(1);
  });

  it("raises lastSeq to the done's seq", () => {
    const state = fromTraits({ messages: [], seq: 2, status: "idle" });
    expect(applyDone(state, { type: "done", seq: 6, index: 0 }).lastSeq).toBe(6);
    expect(applyDone(state, { type: "done", seq: 1, index: 0 }).lastSeq).toBe(2);
  });
});

describe("parseChatEvent", () => {
  it("accepts well-formed delta and done messages", () => {
    expect(parseChatEvent({ type: "delta", seq: 1, index: 0, text: "a" })).toEqual(delta(1, 0, "a"));
    expect(parseChatEvent({ type: "done", seq: 1, index: 0 })).toEqual({ type: "done", seq: 1, index: 0 });
  });

  it.each([
    ["null", null],
    ["a string", "delta"],
    ["an unknown type", { type: "ping", seq: 1, index: 0 }],
    ["a delta without text", { type: "delta", seq: 1, index: 0 }],
    ["a delta with non-string text", { type: "delta", seq: 1, index: 0, text: 5 }],
    ["a missing seq", { type: "delta", index: 0, text: "a" }],
    ["a fractional seq", { type: "delta", seq: 1.5, index: 0, text: "a" }],
    ["a negative index", { type: "delta", seq: 1, index: -1, text: "a" }],
    ["a string index", { type: "done", seq: 1, index: "0" }],
  ])("rejects %s", (_name, content) => {
    expect(parseChatEvent(content)).toBeNull();
  });

  it("leaves the state unchanged for a malformed message", () => {
    const state = fromTraits({ messages: [], seq: 0, status: "idle" });
    expect(applyEvent(state, { type: "delta", seq: "x" })).toBe(state);
  });
});

/** mulberry32: a small seeded generator so a failing interleaving can be replayed. */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("streaming with commits at random points", () => {
  it("ends with exactly the kernel's text, whatever the interleaving", () => {
    const seed = Math.floor(Math.random() * 2 ** 32);
    const random = seededRandom(seed);
    for (let run = 0; run < 200; run++) {
      const pieces = Array.from({ length: 1 + Math.floor(random() * 30) }, (_, i) => `t${i} `);
      // The kernel's view: text so far and the seq of the last delta in it.
      let kernelText = "";
      let kernelSeq = 0;
      let state: StreamState = fromTraits({ messages: [user("q")], seq: 0, status: "generating" });
      // Messages in flight to the front end, in order.
      const inFlight: Array<() => void> = [];
      pieces.forEach((piece, i) => {
        kernelText += piece;
        kernelSeq = i + 1;
        const event = delta(kernelSeq, 1, piece);
        inFlight.push(() => (state = applyDelta(state, event)));
        if (random() < 0.2) {
          const committed = { messages: [user("q"), assistant(kernelText)], seq: kernelSeq, status: "generating" };
          inFlight.push(() => (state = commitTraits(state, committed)));
        }
        // Deliver a random number of the queued messages, in order.
        const deliver = Math.floor(random() * (inFlight.length + 1));
        inFlight.splice(0, deliver).forEach((apply) => apply());
      });
      inFlight.forEach((apply) => apply());
      expect(state.messages[1]?.content, `seed ${seed}, run ${run}`).toBe(kernelText);
    }
  });
});
