// Small DOM and model helpers shared by the widget views. No framework: elements are
// created once and updated in place when traits change.

import type { AnyModel } from "@anywidget/types";

type Child = Node | string | null | undefined | false;
type Attributes = Record<string, string | number | boolean | null | undefined>;

/**
 * Creates an element. Attributes set to `true` are added empty, `false`/`null`/`undefined`
 * are left out; children that are falsy are skipped.
 */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Attributes = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child) element.append(child);
  }
  return element;
}

/** Listens to model events; the returned function removes exactly these listeners. */
export function subscribe(
  model: AnyModel,
  handlers: Record<string, (...args: any[]) => void>,
): () => void {
  for (const [event, handler] of Object.entries(handlers)) model.on(event, handler);
  return () => {
    for (const [event, handler] of Object.entries(handlers)) model.off(event, handler);
  };
}

/** Sets a trait from the front end and syncs it to the kernel. */
export function setTrait<T extends Record<string, any>, K extends keyof T & string>(
  model: AnyModel<T>,
  name: K,
  value: T[K],
): void {
  model.set(name, value);
  model.save_changes();
}
