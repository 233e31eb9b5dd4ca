// Small inline SVG icons, built as DOM (no markup strings: the page's CSP and our own rule).
const NS = "http://www.w3.org/2000/svg";

export function icon(paths: string[], label: string | null, cls = "icon"): SVGSVGElement {
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", cls);
  if (label) {
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", label);
  } else {
    svg.setAttribute("aria-hidden", "true");
  }
  for (const d of paths) {
    const p = document.createElementNS(NS, "path");
    p.setAttribute("d", d);
    svg.appendChild(p);
  }
  return svg;
}

const ONE = "M4.5 12.5l4 4 9-9";
const TWO = ["M1.5 12.5l4 4 9-9", "M8.5 16.5l1 0 9-9"];
const CLOCK = ["M12 4a8 8 0 1 0 0 16a8 8 0 1 0 0-16z", "M12 8v4.5l3 2"];
const BANG = ["M12 4a8 8 0 1 0 0 16a8 8 0 1 0 0-16z", "M12 8v5", "M12 16v.5"];

export const SEND = ["M3 20l18-8L3 4v6l12 2-12 2z"];
export const NEXT = ["M5 5l7 7-7 7", "M12 5l7 7-7 7"];
export const LEAVE = ["M14 4h5v16h-5", "M9 8l-4 4 4 4", "M5 12h10"];
export const FLAG = ["M5 21V4", "M5 4h12l-2.5 4 2.5 4H5"];

/** The status mark of one of our messages, WhatsApp style. */
export function tick(status: string): SVGSVGElement {
  switch (status) {
    case "queued":
      return icon([ONE], "Sent", "tick queued");
    case "delivered":
      return icon(TWO, "Delivered", "tick delivered");
    case "read":
      return icon(TWO, "Read", "tick read");
    case "failed":
      return icon(BANG, "Not sent", "tick failed");
    default:
      return icon(CLOCK, "Sending", "tick pending");
  }
}
