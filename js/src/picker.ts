// The ModelPicker view: a searchable list of registry models grouped by family, with
// Load / Cancel / Unload and the load progress. The kernel owns every piece of state;
// this view only shows the traits and sends requests. The one trait it writes is
// `selected_model_id`, when the user picks a row.

import type { AnyModel } from "@anywidget/types";
import { h, setTrait, subscribe } from "./dom";
import { formatMegabytes, formatParameters, formatPercent } from "./format";
import type { ModelRecord, PickerRequest, PickerTraits } from "./types";

export interface PickerProps {
  model: AnyModel<PickerTraits>;
  el: HTMLElement;
}

/** Models whose id, family, quantization or type contain every word of the query. */
export function filterModels(models: ModelRecord[], query: string): ModelRecord[] {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length === 0) return models;
  return models.filter((record) => {
    const haystack = [record.model_id, record.family, record.quantization, record.model_type]
      .join(" ")
      .toLowerCase();
    return words.every((word) => haystack.includes(word));
  });
}

/** Groups records by family, families in order of first appearance. */
export function groupByFamily(models: ModelRecord[]): Map<string, ModelRecord[]> {
  const groups = new Map<string, ModelRecord[]>();
  for (const record of models) {
    const family = record.family || "other";
    const group = groups.get(family);
    if (group) group.push(record);
    else groups.set(family, [record]);
  }
  return groups;
}

/** The one-line summary under the picker: what is loaded or loading. */
export function pickerStatusText(traits: Pick<PickerTraits, "status" | "selected_model_id" | "loaded_model_id" | "progress">): string {
  if (traits.status === "loading") {
    return `Loading ${traits.selected_model_id}… ${formatPercent(traits.progress?.progress)}`;
  }
  if (traits.loaded_model_id) return `Loaded ${traits.loaded_model_id}`;
  return "No model loaded";
}

function badge(kind: string, text: string, title?: string): HTMLSpanElement {
  return h("span", { class: `nllm-badge nllm-badge-${kind}`, title }, text);
}

function modelRow(record: ModelRecord): HTMLDivElement {
  const disabled = !record.runnable;
  const meta = [
    formatParameters(record.parameters),
    record.quantization,
    `${formatMegabytes(record.size_mb)} on disk`,
    `${formatMegabytes(record.vram_required_MB)} VRAM`,
  ].filter(Boolean);
  const badges = h(
    "span",
    { class: "nllm-badges" },
    record.model_type && record.model_type !== "LLM" && badge("type", record.model_type),
    ...(record.required_features ?? []).map((feature) =>
      badge("feature", feature, "required GPU feature"),
    ),
    record.low_resource_required &&
      badge("low-resource", "low-resource", "runs on devices with a low memory limit"),
    record.cached && badge("cached", "cached", "weights already on disk"),
    badge("loaded", "loaded"),
  );
  const row = h(
    "div",
    {
      class: disabled ? "nllm-model-row is-disabled" : "nllm-model-row",
      "data-model-id": record.model_id,
      role: "option",
      "aria-disabled": disabled ? "true" : null,
      tabindex: disabled ? null : 0,
      title: disabled ? record.reason : null,
    },
    h("div", { class: "nllm-model-main" }, h("span", { class: "nllm-model-id" }, record.model_id), badges),
    h("div", { class: "nllm-model-meta" }, meta.join(" · ")),
    disabled && h("div", { class: "nllm-model-reason" }, record.reason || "cannot run on this device"),
  );
  return row;
}

function familyGroup(family: string, records: ModelRecord[]): HTMLDivElement {
  return h(
    "div",
    { class: "nllm-model-group", role: "group", "aria-label": family },
    h("div", { class: "nllm-model-group-header" }, family),
    ...records.map(modelRow),
  );
}

export function render({ model, el }: PickerProps): () => void {
  const search = h("input", {
    class: "nllm-picker-search",
    type: "search",
    placeholder: "Search models…",
    "aria-label": "Search models",
  });
  const adapterLine = h("div", { class: "nllm-picker-adapter" });
  const list = h("div", { class: "nllm-model-list", role: "listbox", "aria-label": "Models" });
  const loadButton = h("button", { class: "nllm-load", type: "button" }, "Load");
  const cancelButton = h("button", { class: "nllm-cancel", type: "button" }, "Cancel");
  const unloadButton = h("button", { class: "nllm-unload", type: "button" }, "Unload");
  const progressBar = h("progress", { max: 1, value: 0 });
  const progressText = h("span", { class: "nllm-progress-text" });
  const progress = h("div", { class: "nllm-progress" }, progressBar, progressText);
  const statusLine = h("div", { class: "nllm-picker-status", role: "status" });
  const errorLine = h("div", { class: "nllm-picker-error", role: "alert" });
  const root = h(
    "div",
    { class: "nllm-picker" },
    h("div", { class: "nllm-picker-header" }, search, adapterLine),
    list,
    h("div", { class: "nllm-picker-controls" }, loadButton, cancelButton, unloadButton, statusLine),
    progress,
    errorLine,
  );

  const send = (request: PickerRequest) => model.send(request);
  const models = () => model.get("models") ?? [];
  const selectedRecord = () => models().find((record) => record.model_id === model.get("selected_model_id"));

  function renderList(): void {
    const shown = filterModels(models(), search.value);
    if (shown.length === 0) {
      const text = models().length === 0 ? "No models in the registry." : "No model matches the search.";
      list.replaceChildren(h("div", { class: "nllm-model-empty" }, text));
      return;
    }
    const groups = [...groupByFamily(shown)].map(([family, records]) => familyGroup(family, records));
    list.replaceChildren(...groups);
    markRows();
  }

  /** Selection and loaded marks change without rebuilding the rows (keeps focus and scroll). */
  function markRows(): void {
    const selected = model.get("selected_model_id");
    const loaded = model.get("loaded_model_id");
    for (const row of list.querySelectorAll<HTMLElement>(".nllm-model-row")) {
      const id = row.dataset.modelId;
      row.classList.toggle("is-selected", id === selected);
      row.classList.toggle("is-loaded", Boolean(loaded) && id === loaded);
      row.setAttribute("aria-selected", String(id === selected));
      row.querySelector<HTMLElement>(".nllm-badge-loaded")!.hidden = id !== loaded;
    }
  }

  function renderState(): void {
    const status = model.get("status");
    const loading = status === "loading";
    const loaded = model.get("loaded_model_id");
    const selected = selectedRecord();
    const report = model.get("progress") ?? {};

    root.classList.toggle("is-loading", loading);
    loadButton.disabled =
      loading || !selected?.runnable || (status === "loaded" && selected.model_id === loaded);
    cancelButton.hidden = !loading;
    unloadButton.disabled = loading || !loaded;

    progress.hidden = !loading;
    progressBar.value = Math.min(Math.max(Number(report.progress) || 0, 0), 1);
    progressText.textContent = report.text ?? "";

    statusLine.textContent = pickerStatusText({
      status,
      selected_model_id: model.get("selected_model_id"),
      loaded_model_id: loaded,
      progress: report,
    });
    errorLine.textContent = model.get("error") ?? "";
    errorLine.hidden = !model.get("error");
  }

  function renderAdapter(): void {
    const adapter = model.get("adapter");
    adapterLine.textContent = adapter ? `GPU: ${adapter}` : "";
    adapterLine.hidden = !adapter;
  }

  function select(row: HTMLElement | null): void {
    // While a load runs the selection stays on the model being loaded.
    if (!row || row.classList.contains("is-disabled") || model.get("status") === "loading") return;
    setTrait(model, "selected_model_id", row.dataset.modelId ?? "");
  }

  const rowOf = (event: Event) => (event.target as Element).closest<HTMLElement>(".nllm-model-row");
  list.addEventListener("click", (event) => select(rowOf(event)));
  list.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" && event.key !== " ") return;
    event.preventDefault();
    select(rowOf(event));
  });
  search.addEventListener("input", renderList);
  loadButton.addEventListener("click", () => send({ type: "load", model_id: model.get("selected_model_id") }));
  cancelButton.addEventListener("click", () => send({ type: "cancel" }));
  unloadButton.addEventListener("click", () => send({ type: "unload" }));

  const selectionChanged = () => {
    markRows();
    renderState();
  };
  const unsubscribe = subscribe(model, {
    "change:models": () => {
      renderList();
      renderState();
    },
    "change:selected_model_id": selectionChanged,
    "change:loaded_model_id": selectionChanged,
    "change:status": renderState,
    "change:progress": renderState,
    "change:error": renderState,
    "change:adapter": renderAdapter,
  });

  renderList();
  renderState();
  renderAdapter();
  el.append(root);

  return () => {
    unsubscribe();
    root.remove();
  };
}

export default { render };
