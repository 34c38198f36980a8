// Building the page: elements made from data (never HTML strings, so nothing the API returns
// is ever parsed as markup) and the formats every page shares.

const SVG = "http://www.w3.org/2000/svg";

/** An element `tag` with `attrs` (class, data-*, href…; on* keys become listeners) and `children`. */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  return fill(node, attrs, children);
}

/** An SVG element, as `h` makes HTML ones. */
export function s(tag, attrs = {}, ...children) {
  return fill(document.createElementNS(SVG, tag), attrs, children);
}

function fill(node, attrs, children) {
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** A status as a coloured pill (its class names the status). */
export function badge(status) {
  return h("span", { class: `badge badge-${status}`, "data-status": status }, status);
}

/** `0x1234…abcd`, the whole value in its title. */
export function short(hex, keep = 6) {
  if (!hex) return "—";
  const text = hex.length > 2 * keep + 3 ? `${hex.slice(0, keep)}…${hex.slice(-4)}` : hex;
  return h("code", { class: "hash", title: hex }, text);
}

let explorer = null;

/** Link hashes and accounts to this chain explorer base URL (null: show them unlinked). */
export function setExplorer(url) {
  explorer = url ? url.replace(/\/+$/, "") : null;
}

/** A transaction hash, linked to the explorer when one is configured. */
export function txLink(hash) {
  if (!hash) return "—";
  return explorer ? h("a", { href: `${explorer}/tx/${hash}`, rel: "noreferrer" }, short(hash)) : short(hash);
}

/** An account, linked to the explorer when one is configured. */
export function accountLink(address) {
  if (!address) return "—";
  const text = short(address);
  return explorer ? h("a", { href: `${explorer}/address/${address}`, rel: "noreferrer" }, text) : text;
}

/** Wei (a decimal string or number) in ETH, gwei or wei, whichever reads better. */
export function wei(amount) {
  if (amount === null || amount === undefined) return "—";
  const value = BigInt(amount);
  if (value >= 10n ** 14n) return `${trim(Number(value) / 1e18)} ETH`;
  if (value >= 10n ** 6n) return `${trim(Number(value) / 1e9)} gwei`;
  return `${value.toLocaleString("en-US")} wei`;
}

function trim(number) {
  return number.toLocaleString("en-US", { maximumSignificantDigits: 4 });
}

/** A number with thousands separators, or — for null. */
export function count(value, digits = 0) {
  if (value === null || value === undefined) return "—";
  return value.toLocaleString("en-US", { maximumFractionDigits: digits });
}

/** Seconds as `1.25 s`, or — for null. */
export function seconds(value) {
  return value === null || value === undefined ? "—" : `${count(value, 2)} s`;
}

/** Unix seconds relative to now: `in 4 s`, `3 min ago` (the exact time in its title); a time
 * that is `due` reads "due" once past (a next fire not yet taken). Elements made here are kept
 * current by `tickClocks`. */
export function when(unixSeconds, due = false) {
  if (unixSeconds === null || unixSeconds === undefined) return h("span", { class: "muted" }, "—");
  const node = h("time", {
    "data-at": unixSeconds, "data-due": due, title: new Date(unixSeconds * 1000).toLocaleString(),
  });
  node.textContent = relative(unixSeconds, due);
  return node;
}

function relative(unixSeconds, due) {
  const delta = unixSeconds - Date.now() / 1000;
  if (due && delta < 0.5) return "due";
  const span = Math.abs(delta);
  const text =
    span < 1 ? "now" : span < 90 ? `${Math.round(span)} s` : span < 5400 ? `${Math.round(span / 60)} min`
    : span < 129600 ? `${Math.round(span / 3600)} h` : `${Math.round(span / 86400)} d`;
  if (text === "now") return text;
  return delta > 0 ? `in ${text}` : `${text} ago`;
}

/** Bring every relative time on the page up to date. */
export function tickClocks() {
  for (const node of document.querySelectorAll("time[data-at]")) {
    node.textContent = relative(Number(node.dataset.at), node.hasAttribute("data-due"));
  }
}

/** A table with `headers` and `rows` (arrays of cells); each cell is labelled with its header,
 * which a narrow screen shows beside it (style.css). `rowAttrs(i)` gives a row's attributes. */
export function table(headers, rows, rowAttrs = () => ({}), className = "") {
  const head = h("thead", {}, h("tr", {}, headers.map((name) => h("th", { scope: "col" }, name))));
  const body = h(
    "tbody",
    {},
    rows.map((cells, i) =>
      h("tr", rowAttrs(i), cells.map((cell, j) => h("td", { "data-label": headers[j] }, cell))),
    ),
  );
  return h("table", { class: `grid ${className}`.trim() }, head, body);
}

/** A titled panel. */
export function panel(title, ...children) {
  return h("section", { class: "panel" }, title ? h("h2", {}, title) : null, ...children);
}

/** A short message in place of content (nothing yet, or what went wrong). */
export function note(text, kind = "muted") {
  return h("p", { class: `note ${kind}` }, text);
}
