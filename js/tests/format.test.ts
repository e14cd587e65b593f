import { describe, expect, it } from "vitest";
import { formatMegabytes, formatParameters, formatPercent, formatStats } from "../src/format";

describe("formatParameters", () => {
  it.each([
    [135_000_000, "135M"],
    [360_000_000, "360M"],
    [1_240_000_000, "1.2B"],
    [1_000_000_000, "1B"],
    [7_600_000_000, "7.6B"],
    [13_000_000_000, "13B"],
    [1_500, "1.5K"],
    [999, "999"],
  ])("writes %d as %s", (count, text) => {
    expect(formatParameters(count)).toBe(text);
  });

  it("writes an unknown count as ?", () => {
    expect(formatParameters(0)).toBe("?");
    expect(formatParameters(Number.NaN)).toBe("?");
  });
});

describe("formatMegabytes", () => {
  it("rounds to whole megabytes with separators", () => {
    expect(formatMegabytes(87.4)).toBe("87 MB");
    expect(formatMegabytes(1629.8)).toBe("1,630 MB");
  });
});

describe("formatPercent", () => {
  it("rounds and clamps the fraction", () => {
    expect(formatPercent(0.424)).toBe("42%");
    expect(formatPercent(1.3)).toBe("100%");
    expect(formatPercent(-1)).toBe("0%");
    expect(formatPercent(undefined)).toBe("0%");
  });
});

describe("formatStats", () => {
  it("writes tokens, speed and time to first token", () => {
    const stats = { completion_tokens: 42, tokens_per_s: 12.34, ttft_s: 0.451, finish_reason: "stop" };
    expect(formatStats(stats)).toBe("42 tokens · 12.3 tok/s · first token 0.45 s");
  });

  it("notes a stopped or truncated reply", () => {
    expect(formatStats({ completion_tokens: 3, finish_reason: "abort" })).toBe("3 tokens · stopped");
    expect(formatStats({ completion_tokens: 9, finish_reason: "length" })).toBe("9 tokens · max tokens reached");
  });

  it("is empty without stats", () => {
    expect(formatStats(undefined)).toBe("");
    expect(formatStats({})).toBe("");
  });
});
