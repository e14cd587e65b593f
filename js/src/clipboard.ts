// Copying text to the clipboard. The async Clipboard API needs a secure context and
// permission; where it is missing or refused (plain-http Jupyter servers, some iframes)
// a hidden textarea and the older execCommand("copy") still work.

import { h } from "./dom";

function copyWithTextarea(text: string): boolean {
  const textarea = h("textarea", { readonly: true, "aria-hidden": "true", class: "nllm-offscreen" });
  textarea.value = text;
  document.body.append(textarea);
  textarea.select();
  try {
    return document.execCommand("copy");
  } catch {
    return false;
  } finally {
    textarea.remove();
  }
}

/** Puts `text` on the clipboard; resolves to whether that worked. */
export async function copyText(text: string): Promise<boolean> {
  if (navigator.clipboard?.writeText) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // fall through to the textarea route
    }
  }
  return copyWithTextarea(text);
}

/** A small "Copy" button that says "Copied" for a moment once the text is on the clipboard. */
export function copyButton(className: string, label: string, text: () => string): HTMLButtonElement {
  const button = h(
    "button",
    { class: `nllm-copy ${className}`, type: "button", title: label, "aria-label": label },
    "Copy",
  );
  button.addEventListener("click", async () => {
    const copied = await copyText(text());
    button.textContent = copied ? "Copied" : "Copy failed";
    setTimeout(() => (button.textContent = "Copy"), 1500);
  });
  return button;
}
