// Message text → sanitized DOM. Model output is untrusted: Markdown is rendered with
// `marked`, then DOMPurify removes scripts, event-handler attributes, javascript: URLs and
// inline styles before anything reaches the page. Links open in a new tab without an
// opener; fenced code blocks get a copy button.

import DOMPurify from "dompurify";
import { Marked } from "marked";
import { copyButton } from "./clipboard";
import { h } from "./dom";

// A private instance so the page's global `marked` options are neither used nor changed.
const markdown = new Marked({ gfm: true, breaks: false });

const SANITIZE_OPTIONS = {
  // <style> and style="" could restyle the notebook around the widget.
  FORBID_TAGS: ["style", "form"],
  FORBID_ATTR: ["style"],
  RETURN_DOM_FRAGMENT: true as const,
};

/** Renders Markdown to a sanitized fragment, with link and code-block treatment applied. */
export function renderMarkdown(text: string): DocumentFragment {
  const html = markdown.parse(text, { async: false });
  const fragment = DOMPurify.sanitize(html, SANITIZE_OPTIONS);
  for (const link of fragment.querySelectorAll("a[href]")) {
    link.setAttribute("target", "_blank");
    link.setAttribute("rel", "noopener noreferrer");
  }
  for (const pre of fragment.querySelectorAll("pre")) addCodeCopyButton(pre);
  return fragment;
}

/** Wraps a <pre> in a `.nllm-code` box with a button that copies the code's text. */
function addCodeCopyButton(pre: HTMLPreElement): void {
  const button = copyButton("nllm-copy-code", "Copy code", () => pre.textContent ?? "");
  const box = h("div", { class: "nllm-code" });
  pre.replaceWith(box);
  box.append(button, pre);
}
