// The synced traits and custom messages of the two widgets, as the kernel side defines
// them (see the widget contract). The front end only maps these names onto the DOM:
// validation and state live in Python.

/** One registry record, as the kernel sends it in the picker's `models` trait. */
export interface ModelRecord {
  model_id: string;
  family: string;
  quantization: string;
  parameters: number;
  size_mb: number;
  vram_required_MB: number;
  required_features: string[];
  low_resource_required: boolean;
  model_type: "LLM" | "VLM" | "embedding";
  context_window_size: number | null;
  cached: boolean;
  runnable: boolean;
  /** "" when runnable, else why not. */
  reason: string;
}

/** The last InitProgressReport of a load. */
export interface LoadProgress {
  progress: number;
  time_elapsed: number;
  text: string;
}

export type PickerStatus = "unloaded" | "loading" | "loaded" | "error";

export interface PickerTraits {
  [key: string]: unknown;
  models: ModelRecord[];
  /** The chosen model (not `model_id`: ipywidgets uses that name for the widget's comm id). */
  selected_model_id: string;
  loaded_model_id: string;
  status: PickerStatus;
  progress: Partial<LoadProgress>;
  error: string;
  adapter: string;
}

export type PickerRequest =
  | { type: "load"; model_id: string }
  | { type: "cancel" }
  | { type: "unload" }
  | { type: "refresh" };

export interface ChatMessage {
  role: "user" | "assistant";
  content: string;
}

export interface ReplyStats {
  prompt_tokens: number;
  completion_tokens: number;
  seconds: number;
  ttft_s: number;
  tokens_per_s: number;
  finish_reason: string;
}

export type ChatStatus = "idle" | "generating" | "loading";

export interface ChatTraits {
  [key: string]: unknown;
  messages: ChatMessage[];
  system_prompt: string;
  temperature: number;
  top_p: number;
  max_tokens: number;
  status: ChatStatus;
  error: string;
  draft: string;
  seq: number;
  /** Keyed by the message index as a string. */
  reply_stats: Record<string, Partial<ReplyStats>>;
  selected_model_id: string;
  /** "IPY_MODEL_<id>" of the embedded picker, or empty. */
  picker: string | null;
}

export type ChatRequest =
  | { type: "send"; text: string }
  | { type: "stop" }
  | { type: "regenerate" }
  | { type: "clear" };

/** Text to append to `messages[index]`; `index == messages.length` starts a new reply. */
export interface DeltaEvent {
  type: "delta";
  seq: number;
  index: number;
  text: string;
}

/** The reply at `index` ended; its final text and stats are already in the traits. */
export interface DoneEvent {
  type: "done";
  seq: number;
  index: number;
}

export type ChatEvent = DeltaEvent | DoneEvent;
