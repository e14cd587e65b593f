import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { filterModels, groupByFamily, pickerStatusText, render } from "../src/picker";
import type { PickerTraits } from "../src/types";
import { FakeModel, modelRecord, pickerTraits, REGISTRY } from "./fake_model";

let el: HTMLDivElement;
let model: FakeModel<PickerTraits>;
let cleanup: () => void;

function mount(overrides: Partial<PickerTraits> = {}): void {
  model = new FakeModel(pickerTraits(overrides));
  cleanup = render({ model, el });
}

const $ = <E extends Element = HTMLElement>(selector: string) => el.querySelector<E>(selector)!;
const $$ = (selector: string) => [...el.querySelectorAll<HTMLElement>(selector)];
const row = (id: string) => $(`.nllm-model-row[data-model-id="${id}"]`);
const rowIds = () => $$(".nllm-model-row").map((r) => r.dataset.modelId);

function search(query: string): void {
  const input = $<HTMLInputElement>("input.nllm-picker-search");
  input.value = query;
  input.dispatchEvent(new Event("input"));
}

beforeEach(() => {
  el = document.createElement("div");
  document.body.append(el);
});

afterEach(() => {
  cleanup?.();
  el.remove();
});

describe("model list", () => {
  it("groups rows under family headers in registry order", () => {
    mount();
    const groups = $$(".nllm-model-group");
    expect(groups.map((g) => g.querySelector(".nllm-model-group-header")!.textContent)).toEqual(["SmolLM2", "Llama"]);
    const smolRows = [...groups[0].querySelectorAll<HTMLElement>(".nllm-model-row")].map((r) => r.dataset.modelId);
    expect(smolRows).toEqual(["SmolLM2-135M-Instruct-Q4_1", "SmolLM2-360M-Instruct-F16"]);
  });

  it("shows id, size, parameters, quantization, memory and badges on each row", () => {
    mount();
    const smol = row("SmolLM2-135M-Instruct-Q4_1");
    expect(smol.querySelector(".nllm-model-id")!.textContent).toBe("SmolLM2-135M-Instruct-Q4_1");
    const meta = smol.querySelector(".nllm-model-meta")!.textContent;
    expect(meta).toContain("135M");
    expect(meta).toContain("Q4_1");
    expect(meta).toContain("87 MB on disk");
    expect(meta).toContain("376 MB VRAM");
    expect(smol.querySelector(".nllm-badge-cached")).not.toBeNull();
    expect(smol.querySelector(".nllm-badge-low-resource")).not.toBeNull();

    const llama = row("Llama-3.2-1B-Instruct-Q4_1");
    expect(llama.querySelector(".nllm-model-meta")!.textContent).toContain("1.2B");
    expect(llama.querySelector(".nllm-badge-cached")).toBeNull();
    expect(llama.querySelector(".nllm-badge-low-resource")).toBeNull();
  });

  it("lists required features as badges", () => {
    mount();
    const badges = row("SmolLM2-360M-Instruct-F16").querySelectorAll(".nllm-badge-feature");
    expect([...badges].map((b) => b.textContent)).toEqual(["shader-f16"]);
  });

  it("disables rows that cannot run and says why", () => {
    mount();
    const f16 = row("SmolLM2-360M-Instruct-F16");
    expect(f16.classList.contains("is-disabled")).toBe(true);
    expect(f16.querySelector(".nllm-model-reason")!.textContent).toBe(
      "needs the shader-f16 feature, which this adapter lacks",
    );
    expect(row("SmolLM2-135M-Instruct-Q4_1").classList.contains("is-disabled")).toBe(false);
    expect(row("SmolLM2-135M-Instruct-Q4_1").querySelector(".nllm-model-reason")).toBeNull();
  });

  it("says so when the registry is empty", () => {
    mount({ models: [] });
    expect($(".nllm-model-empty").textContent).toContain("No models");
  });

  it("rebuilds when the kernel sends new models", () => {
    mount();
    model.kernelUpdate({ models: [modelRecord({ model_id: "Qwen-0.5B", family: "Qwen" })] });
    expect(rowIds()).toEqual(["Qwen-0.5B"]);
    expect($(".nllm-model-group-header").textContent).toBe("Qwen");
  });
});

describe("search", () => {
  it("keeps only rows matching every word, dropping empty groups", () => {
    mount();
    search("smol q4");
    expect(rowIds()).toEqual(["SmolLM2-135M-Instruct-Q4_1"]);
    expect($$(".nllm-model-group-header").map((h) => h.textContent)).toEqual(["SmolLM2"]);
  });

  it("matches the family and is case-insensitive", () => {
    mount();
    search("LLAMA");
    expect(rowIds()).toEqual(["Llama-3.2-1B-Instruct-Q4_1"]);
  });

  it("shows a message when nothing matches and everything again when cleared", () => {
    mount();
    search("nonexistent");
    expect(rowIds()).toEqual([]);
    expect($(".nllm-model-empty").textContent).toContain("No model matches");
    search("");
    expect(rowIds()).toHaveLength(3);
  });

  it("keeps the query when the model list changes", () => {
    mount();
    search("llama");
    model.kernelUpdate({ models: [...REGISTRY, modelRecord({ model_id: "Llama-3.2-3B", family: "Llama" })] });
    expect(rowIds()).toEqual(["Llama-3.2-1B-Instruct-Q4_1", "Llama-3.2-3B"]);
  });
});

describe("selection", () => {
  it("marks the selected_model_id trait's row as selected", () => {
    mount();
    expect(row("SmolLM2-135M-Instruct-Q4_1").classList.contains("is-selected")).toBe(true);
    expect($$(".nllm-model-row.is-selected")).toHaveLength(1);
  });

  it("sets selected_model_id and syncs it when a runnable row is clicked", () => {
    mount();
    row("Llama-3.2-1B-Instruct-Q4_1").click();
    expect(model.get("selected_model_id")).toBe("Llama-3.2-1B-Instruct-Q4_1");
    expect(model.saveCount).toBe(1);
    expect(row("Llama-3.2-1B-Instruct-Q4_1").classList.contains("is-selected")).toBe(true);
    expect(row("SmolLM2-135M-Instruct-Q4_1").classList.contains("is-selected")).toBe(false);
  });

  it("selects with the keyboard", () => {
    mount();
    row("Llama-3.2-1B-Instruct-Q4_1").dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
    expect(model.get("selected_model_id")).toBe("Llama-3.2-1B-Instruct-Q4_1");
  });

  it("ignores clicks on disabled rows", () => {
    mount();
    (row("SmolLM2-360M-Instruct-F16").querySelector(".nllm-model-id") as HTMLElement).click();
    expect(model.get("selected_model_id")).toBe("SmolLM2-135M-Instruct-Q4_1");
    expect(model.saveCount).toBe(0);
  });

  it("keeps the selection while a load runs", () => {
    mount({ status: "loading" });
    row("Llama-3.2-1B-Instruct-Q4_1").click();
    expect(model.get("selected_model_id")).toBe("SmolLM2-135M-Instruct-Q4_1");
  });

  it("follows selected_model_id set from Python", () => {
    mount();
    model.kernelUpdate({ selected_model_id: "Llama-3.2-1B-Instruct-Q4_1" });
    expect(row("Llama-3.2-1B-Instruct-Q4_1").classList.contains("is-selected")).toBe(true);
  });
});

describe("load, cancel and unload", () => {
  it("sends load with the selected model", () => {
    mount();
    row("Llama-3.2-1B-Instruct-Q4_1").click();
    $<HTMLButtonElement>("button.nllm-load").click();
    expect(model.sent).toEqual([{ type: "load", model_id: "Llama-3.2-1B-Instruct-Q4_1" }]);
  });

  it("disables Load for a model that cannot run or is already loaded", () => {
    mount({ selected_model_id: "SmolLM2-360M-Instruct-F16" });
    expect($<HTMLButtonElement>("button.nllm-load").disabled).toBe(true);
    model.kernelUpdate({
      selected_model_id: "SmolLM2-135M-Instruct-Q4_1",
      loaded_model_id: "SmolLM2-135M-Instruct-Q4_1",
      status: "loaded",
    });
    expect($<HTMLButtonElement>("button.nllm-load").disabled).toBe(true);
    row("Llama-3.2-1B-Instruct-Q4_1").click();
    expect($<HTMLButtonElement>("button.nllm-load").disabled).toBe(false);
  });

  it("shows Cancel only while loading, and it sends cancel", () => {
    mount();
    const cancel = $<HTMLButtonElement>("button.nllm-cancel");
    expect(cancel.hidden).toBe(true);
    model.kernelUpdate({ status: "loading" });
    expect(cancel.hidden).toBe(false);
    expect($<HTMLButtonElement>("button.nllm-load").disabled).toBe(true);
    cancel.click();
    expect(model.sent).toEqual([{ type: "cancel" }]);
    model.kernelUpdate({ status: "unloaded", error: "load cancelled" });
    expect(cancel.hidden).toBe(true);
  });

  it("enables Unload when a model is loaded, and it sends unload", () => {
    mount();
    const unload = $<HTMLButtonElement>("button.nllm-unload");
    expect(unload.disabled).toBe(true);
    model.kernelUpdate({ status: "loaded", loaded_model_id: "SmolLM2-135M-Instruct-Q4_1" });
    expect(unload.disabled).toBe(false);
    unload.click();
    expect(model.sent).toEqual([{ type: "unload" }]);
  });
});

describe("progress and status", () => {
  it("shows the load progress while loading", () => {
    mount();
    expect($(".nllm-progress").hidden).toBe(true);
    model.kernelUpdate({
      status: "loading",
      progress: { progress: 0.42, time_elapsed: 3.2, text: "Fetching weights [4/10]" },
    });
    expect($(".nllm-progress").hidden).toBe(false);
    expect($<HTMLProgressElement>(".nllm-progress progress").value).toBeCloseTo(0.42);
    expect($(".nllm-progress-text").textContent).toBe("Fetching weights [4/10]");
    expect($(".nllm-picker-status").textContent).toBe("Loading SmolLM2-135M-Instruct-Q4_1… 42%");
  });

  it("says what is loaded and marks its row", () => {
    mount();
    expect($(".nllm-picker-status").textContent).toBe("No model loaded");
    model.kernelUpdate({ status: "loaded", loaded_model_id: "SmolLM2-135M-Instruct-Q4_1" });
    expect($(".nllm-picker-status").textContent).toBe("Loaded SmolLM2-135M-Instruct-Q4_1");
    expect($(".nllm-progress").hidden).toBe(true);
    const loaded = row("SmolLM2-135M-Instruct-Q4_1");
    expect(loaded.classList.contains("is-loaded")).toBe(true);
    expect(loaded.querySelector<HTMLElement>(".nllm-badge-loaded")!.hidden).toBe(false);
    expect(row("Llama-3.2-1B-Instruct-Q4_1").querySelector<HTMLElement>(".nllm-badge-loaded")!.hidden).toBe(true);
  });

  it("shows the error of a failed load and hides it once cleared", () => {
    mount();
    expect($(".nllm-picker-error").hidden).toBe(true);
    model.kernelUpdate({ status: "error", error: "out of GPU memory" });
    expect($(".nllm-picker-error").hidden).toBe(false);
    expect($(".nllm-picker-error").textContent).toBe("out of GPU memory");
    model.kernelUpdate({ status: "unloaded", error: "" });
    expect($(".nllm-picker-error").hidden).toBe(true);
  });

  it("shows the adapter", () => {
    mount();
    expect($(".nllm-picker-adapter").textContent).toContain("llvmpipe");
    model.kernelUpdate({ adapter: "" });
    expect($(".nllm-picker-adapter").hidden).toBe(true);
  });
});

describe("cleanup", () => {
  it("removes its listeners and its DOM", () => {
    mount();
    expect(model.listenerCount()).toBeGreaterThan(0);
    cleanup();
    expect(model.listenerCount()).toBe(0);
    expect(el.querySelector(".nllm-picker")).toBeNull();
  });
});

describe("helpers", () => {
  it("filterModels returns everything for a blank query", () => {
    expect(filterModels(REGISTRY, "  ")).toBe(REGISTRY);
  });

  it("groupByFamily puts a record without a family under 'other'", () => {
    const groups = groupByFamily([modelRecord({ family: "" })]);
    expect([...groups.keys()]).toEqual(["other"]);
  });

  it("pickerStatusText prefers the load in progress", () => {
    const text = pickerStatusText({
      status: "loading",
      selected_model_id: "B",
      loaded_model_id: "A",
      progress: { progress: 0.5 },
    });
    expect(text).toBe("Loading B… 50%");
  });
});
