// The palette of app.css against WCAG 2.1: text at least 4.5:1, icons and
// control borders at least 3:1. Read from the stylesheet itself, so a colour
// change that breaks contrast fails here.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";

const css = readFileSync(resolve(__dirname, "app.css"), "utf8");
const vars = Object.fromEntries([...css.matchAll(/--([a-z-]+):\s*(#[0-9a-f]{6})/gi)].map((m) => [m[1], m[2]]));
const color = (c: string) => (c.startsWith("#") ? c : vars[c]);

function luminance(hex: string): number {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255);
  const lin = (v: number) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
  return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
}

export function contrast(a: string, b: string): number {
  const [x, y] = [luminance(color(a)), luminance(color(b))].sort((p, q) => q - p);
  return (x + 0.05) / (y + 0.05);
}

describe("the app's colours", () => {
  const text: [string, string, string][] = [
    ["fg", "bg", "body text"],
    ["muted", "#ffffff", "hints on cards"],
    ["muted", "mine", "times in our bubbles"],
    ["muted", "theirs", "times in theirs"],
    ["fg", "mine", "our messages"],
    ["#ffffff", "green", "header and primary buttons"],
    ["danger", "#ffffff", "report and ban buttons"],
    ["green-dark", "#ffffff", "chosen scope"],
  ];
  it.each(text)("%s on %s (%s) is readable text", (fg, bg) => expect(contrast(fg, bg)).toBeGreaterThanOrEqual(4.5));
  const marks: [string, string, string][] = [
    ["tick", "mine", "grey ticks"],
    ["read", "mine", "blue ticks"],
    ["focus", "#ffffff", "focus ring"],
    ["green", "chat-bg", "send button"],
  ];
  it.each(marks)("%s on %s (%s) is a visible mark", (fg, bg) => expect(contrast(fg, bg)).toBeGreaterThanOrEqual(3));
});
