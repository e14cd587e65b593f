// Number and stats formatting for the widget views. Pure functions, unit-tested.

import type { ReplyStats } from "./types";

function isFiniteNumber(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value);
}

/** Parameter counts the way model cards write them: 135M, 1.2B, 13B. */
export function formatParameters(count: number): string {
  if (!isFiniteNumber(count) || count <= 0) return "?";
  const units: Array<[number, string]> = [
    [1e9, "B"],
    [1e6, "M"],
    [1e3, "K"],
  ];
  for (const [scale, suffix] of units) {
    if (count >= scale) {
      const value = count / scale;
      const text = value < 10 ? value.toFixed(1) : value.toFixed(0);
      return text.replace(/\.0$/, "") + suffix;
    }
  }
  return String(count);
}

/** Whole megabytes with thousands separators: "1,234 MB". */
export function formatMegabytes(megabytes: number): string {
  if (!isFiniteNumber(megabytes)) return "? MB";
  return `${Math.round(megabytes).toLocaleString("en-US")} MB`;
}

/** A 0..1 fraction as a whole percentage, clamped: "42%". */
export function formatPercent(fraction: number | undefined): string {
  const value = isFiniteNumber(fraction) ? Math.min(Math.max(fraction, 0), 1) : 0;
  return `${Math.round(value * 100)}%`;
}

const FINISH_NOTES: Record<string, string> = {
  abort: "stopped",
  length: "max tokens reached",
};

/** "42 tokens · 12.3 tok/s · first token 0.45 s", leaving out fields the kernel did not send. */
export function formatStats(stats: Partial<ReplyStats> | undefined): string {
  if (!stats) return "";
  const parts: string[] = [];
  if (isFiniteNumber(stats.completion_tokens)) parts.push(`${stats.completion_tokens} tokens`);
  if (isFiniteNumber(stats.tokens_per_s)) parts.push(`${stats.tokens_per_s.toFixed(1)} tok/s`);
  if (isFiniteNumber(stats.ttft_s)) parts.push(`first token ${stats.ttft_s.toFixed(2)} s`);
  const note = stats.finish_reason ? FINISH_NOTES[stats.finish_reason] : undefined;
  if (note) parts.push(note);
  return parts.join(" · ");
}
