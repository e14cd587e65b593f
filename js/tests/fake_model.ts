// A stand-in for the anywidget model: traits in a plain object, Backbone-style events
// (`change:<trait>` fired synchronously on set, also for the front end's own sets),
// recorded `send` calls, and a widget manager that resolves other fake models by id;
// plus trait fixtures for both widgets.

import type { AnyModel } from "@anywidget/types";
import type { ChatTraits, ModelRecord, PickerTraits } from "../src/types";

type Handler = (...args: any[]) => void;

export class FakeModel<T extends Record<string, any>> implements AnyModel<T> {
  readonly sent: unknown[] = [];
  saveCount = 0;
  private readonly state: T;
  private readonly handlers = new Map<string, Set<Handler>>();
  private readonly registry: Map<string, FakeModel<any>>;

  constructor(state: T, registry: Map<string, FakeModel<any>> = new Map()) {
    this.state = { ...state };
    this.registry = registry;
  }

  readonly widget_manager = {
    get_model: async <S extends Record<string, any>>(id: string): Promise<AnyModel<S>> => {
      const model = this.registry.get(id);
      if (!model) throw new Error(`no model ${id}`);
      return model as unknown as AnyModel<S>;
    },
  };

  get<K extends keyof T>(key: K): T[K] {
    return this.state[key];
  }

  set<K extends keyof T>(key: K, value: T[K]): void {
    this.state[key] = value;
    this.emit(`change:${String(key)}`);
  }

  save_changes(): void {
    this.saveCount += 1;
  }

  send(content: unknown): void {
    this.sent.push(content);
  }

  on(eventName: string, callback: Handler): void {
    if (!this.handlers.has(eventName)) this.handlers.set(eventName, new Set());
    this.handlers.get(eventName)!.add(callback);
  }

  off(eventName?: string | null, callback?: Handler | null): void {
    if (!eventName) {
      this.handlers.clear();
      return;
    }
    if (!callback) this.handlers.delete(eventName);
    else this.handlers.get(eventName)?.delete(callback);
  }

  /** The kernel changes several traits in one hold_sync: all values first, then the events. */
  kernelUpdate(changes: Partial<T>): void {
    Object.assign(this.state, changes);
    for (const key of Object.keys(changes)) this.emit(`change:${key}`);
  }

  /** A custom message from the kernel. */
  emitCustom(content: unknown): void {
    this.emit("msg:custom", content, []);
  }

  listenerCount(): number {
    let count = 0;
    for (const set of this.handlers.values()) count += set.size;
    return count;
  }

  private emit(eventName: string, ...args: unknown[]): void {
    for (const handler of [...(this.handlers.get(eventName) ?? [])]) handler(...args);
  }
}

// ---- fixtures ----

export function modelRecord(overrides: Partial<ModelRecord> = {}): ModelRecord {
  return {
    model_id: "SmolLM2-135M-Instruct-Q4_1",
    family: "SmolLM2",
    quantization: "Q4_1",
    parameters: 135_000_000,
    size_mb: 87.4,
    vram_required_MB: 376.1,
    required_features: [],
    low_resource_required: true,
    model_type: "LLM",
    context_window_size: 2048,
    cached: false,
    runnable: true,
    reason: "",
    ...overrides,
  };
}

export const REGISTRY: ModelRecord[] = [
  modelRecord({ cached: true }),
  modelRecord({
    model_id: "Llama-3.2-1B-Instruct-Q4_1",
    family: "Llama",
    parameters: 1_240_000_000,
    size_mb: 1240,
    vram_required_MB: 1629.8,
    low_resource_required: false,
  }),
  modelRecord({
    model_id: "SmolLM2-360M-Instruct-F16",
    quantization: "F16",
    parameters: 360_000_000,
    size_mb: 724,
    vram_required_MB: 1010,
    required_features: ["shader-f16"],
    runnable: false,
    reason: "needs the shader-f16 feature, which this adapter lacks",
  }),
];

export function pickerTraits(overrides: Partial<PickerTraits> = {}): PickerTraits {
  return {
    models: REGISTRY,
    selected_model_id: "SmolLM2-135M-Instruct-Q4_1",
    loaded_model_id: "",
    status: "unloaded",
    progress: { progress: 0, time_elapsed: 0, text: "" },
    error: "",
    adapter: "llvmpipe (LLVM 15.0.6, 256 bits) · Vulkan",
    ...overrides,
  };
}

export function chatTraits(overrides: Partial<ChatTraits> = {}): ChatTraits {
  return {
    messages: [],
    system_prompt: "You are a helpful assistant.",
    temperature: 0.7,
    top_p: 0.95,
    max_tokens: 512,
    status: "idle",
    error: "",
    draft: "",
    seq: 0,
    reply_stats: {},
    selected_model_id: "SmolLM2-135M-Instruct-Q4_1",
    picker: "",
    ...overrides,
  };
}
