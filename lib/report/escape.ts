/**
 * Escaping for text that came from packets (or from names an input chose) on its way into a report:
 * HTML pages and spreadsheets must show it, never run it.
 */

/**
 * Whether a spreadsheet would read the text as a formula: it starts with = + - @, tab or carriage
 * return (OWASP's CSV injection list).
 */
export function startsLikeFormula(text: string): boolean {
  const first = text.charCodeAt(0);
  return first === 61 || first === 43 || first === 45 || first === 64 || first === 9 || first === 13;
}

/**
 * A CSV cell safe to open in a spreadsheet: text starting with = + - @ (or tab, carriage return)
 * gets a leading apostrophe, which spreadsheets show as text. Numbers pass unchanged.
 */
export function safeCsvCell<T>(cell: T): T | string {
  return typeof cell === "string" && startsLikeFormula(cell) ? `'${cell}` : cell;
}

/** A character that makes csv-stringify quote a cell (delimiter, quote, record delimiters). */
const NEEDS_QUOTES = /[",\r\n]/;

/** Whether csv-stringify would write the text quoted: it holds a delimiter, quote or line break. */
export function csvNeedsQuotes(text: string): boolean {
  return NEEDS_QUOTES.test(text);
}

const HTML_ENTITIES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/** Text for HTML element content or a quoted attribute value. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (character) => HTML_ENTITIES[character]);
}

/**
 * JSON for a `<script type="application/json">` block: `<`, `>` and `&` as \u escapes so no string
 * can close the element or open a comment, and U+2028/U+2029 escaped for older parsers.
 */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (character) => {
    return `\\u${character.charCodeAt(0).toString(16).padStart(4, "0")}`;
  });
}

/**
 * Text an input chose (a capture's interface name, a quoted piece of a bad policy) for a terminal or a
 * one-line message: control characters shown as \xNN, never sent.
 */
export function printable(text: string): string {
  return text.replace(
    // eslint-disable-next-line no-control-regex
    /[\u0000-\u001f\u007f-\u009f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}
