// @vitest-environment jsdom
// DOMPurify does not support happy-dom (its parser differences let markup through), so the
// sanitizer is tested on jsdom, which DOMPurify's own test suite uses.
import { afterEach, describe, expect, it, vi } from "vitest";
import { renderMarkdown } from "../src/markdown";

function html(text: string): HTMLDivElement {
  const container = document.createElement("div");
  container.append(renderMarkdown(text));
  return container;
}

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("renderMarkdown", () => {
  it("renders emphasis, lists and inline code", () => {
    const out = html("**bold** and `code`\n\n- one\n- two");
    expect(out.querySelector("strong")?.textContent).toBe("bold");
    expect(out.querySelector("code")?.textContent).toBe("code");
    expect(out.querySelectorAll("li")).toHaveLength(2);
  });

  it("removes event-handler attributes and script elements", () => {
    const out = html('hi <img src=x onerror=alert(1)> <script>alert(2)</script> <b onclick="x()">b</b>');
    expect(out.querySelector("script")).toBeNull();
    expect(out.querySelector("[onerror]")).toBeNull();
    expect(out.querySelector("[onclick]")).toBeNull();
    expect(out.innerHTML).not.toContain("onerror");
    expect(out.innerHTML).not.toContain("alert(2)");
  });

  it("removes javascript: links, iframes, styles and inline style attributes", () => {
    const out = html(
      '[x](javascript:alert(1)) <iframe src="https://example.org"></iframe>' +
        '<style>body{display:none}</style><span style="position:fixed">s</span>',
    );
    expect(out.innerHTML).not.toContain("javascript:");
    expect(out.querySelector("iframe")).toBeNull();
    expect(out.querySelector("style")).toBeNull();
    expect(out.querySelector("[style]")).toBeNull();
  });

  it("opens links in a new tab without an opener", () => {
    const link = html("[docs](https://example.org/docs)").querySelector("a")!;
    expect(link.getAttribute("href")).toBe("https://example.org/docs");
    expect(link.getAttribute("target")).toBe("_blank");
    expect(link.getAttribute("rel")).toContain("noopener");
  });

  it("gives each fenced code block a copy button that copies the code", async () => {
    const writeText = vi.fn().mockResolvedValue(undefined);
    vi.stubGlobal("navigator", { clipboard: { writeText } });
    const out = html("```python\nprint('hi')\n```\n\n```\nx = 1\n```");
    const boxes = out.querySelectorAll(".nllm-code");
    expect(boxes).toHaveLength(2);
    const button = boxes[0].querySelector<HTMLButtonElement>("button.nllm-copy-code")!;
    button.click();
    await vi.waitFor(() => expect(writeText).toHaveBeenCalledWith("print('hi')\n"));
    await vi.waitFor(() => expect(button.textContent).toBe("Copied"));
  });

  it("keeps code text literal", () => {
    const out = html("```html\n<script>alert(1)</script>\n```");
    expect(out.querySelector("script")).toBeNull();
    expect(out.querySelector("pre code")?.textContent).toBe("<script>alert(1)</script>\n");
  });

  it("renders an unfinished code fence while streaming", () => {
    const out = html("Here:\n\n```js\nconst a = 1;");
    expect(out.querySelector("pre code")?.textContent).toContain("const a = 1;");
  });
});
