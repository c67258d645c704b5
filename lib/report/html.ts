/**
 * `index.html`: one self-contained page (inline CSS and script, no network) an analyst opens first:
 * the summary, a sortable and filterable flows table, a lifecycle timeline (each connection a bar
 * coloured by state over time), the NAT table and the orphans.
 *
 * Every string that came from a capture is escaped: the summary is rendered here through escapeHtml,
 * the tables are built in the browser with textContent from a JSON block whose `<`, `>` and `&` are
 * \u-escaped, so nothing a packet carries can become markup or script.
 */
import type { FlowRecord } from "./flows.js";
import type { OrphanRecord } from "./orphans.js";
import type { NatMappingRecord } from "./nat-mappings.js";
import type { ReportSummary } from "./summary.js";
import { escapeHtml, jsonForScript } from "./escape.js";

export interface HtmlReportInput {
  title: string;
  summary: ReportSummary;
  /** The flows the page shows (the first ones ended; capped by the caller). */
  flows: FlowRecord[];
  /** Flows in the whole report, to say how many the page leaves out. */
  totalFlows: number;
  orphans: OrphanRecord[];
  totalOrphans: number;
  /** NAT mappings the page shows (capped by the caller) and how many the report has. */
  natMappings: NatMappingRecord[];
  totalNatMappings: number;
  /** How many flows the timeline draws at most. */
  timelineRows: number;
  /** Generator line (tool and version); no wall-clock time, so regenerating changes nothing. */
  generator: string;
}

/** The colour of each state on the timeline (TCP tracker states, and the other protocols' steps). */
export const STATE_COLOURS: Record<string, string> = {
  SYN_SENT: "#9ecae1",
  SYN_SENT2: "#9ecae1",
  SYN_RECV: "#6baed6",
  ESTABLISHED: "#31a354",
  FIN_WAIT: "#fdae6b",
  CLOSE_WAIT: "#fd8d3c",
  LAST_ACK: "#e6550d",
  TIME_WAIT: "#bcbddc",
  CLOSE: "#969696",
  NONE: "#d9d9d9",
  UNREPLIED: "#fdd0a2",
  REPLIED: "#74c476",
  ASSURED: "#31a354",
};

function table(rows: [string, string | number][]): string {
  return `<table class="kv">${rows
    .map(([key, value]) => `<tr><th>${escapeHtml(key)}</th><td>${escapeHtml(String(value))}</td></tr>`)
    .join("")}</table>`;
}

function countsTable(title: string, counts: Record<string, number>, id: string): string {
  const rows = Object.entries(counts);
  if (rows.length === 0) return `<h3>${escapeHtml(title)}</h3><p class="none">none</p>`;
  return `<h3>${escapeHtml(title)}</h3><table class="kv" id="${id}">${rows
    .map(
      ([key, value]) =>
        `<tr><th>${escapeHtml(key)}</th><td data-count="${escapeHtml(key)}">${value}</td></tr>`,
    )
    .join("")}</table>`;
}

function summarySection(summary: ReportSummary): string {
  const { packets, connections, orphans, capture } = summary;
  const reconciled = packets.reconciles.records && packets.reconciles.decoded;
  return `<section id="summary"><h2>Summary</h2>
<div class="cards">
<div class="card"><div class="n" id="count-records">${packets.records}</div><div>records</div></div>
<div class="card"><div class="n" id="count-decoded">${packets.decoded}</div><div>packets tracked</div></div>
<div class="card"><div class="n" id="count-connections">${connections.total}</div><div>connections</div></div>
<div class="card"><div class="n" id="count-live">${connections.liveAtEnd}</div><div>live at the end</div></div>
<div class="card"><div class="n" id="count-orphans">${orphans?.total ?? "not counted"}</div><div>orphaned packets</div></div>
</div>
<p class="${reconciled ? "ok" : "bad"}" id="reconcile">${
    reconciled
      ? "The accounting reconciles: every record is in exactly one class, every tracked packet has exactly one verdict."
      : "The accounting does NOT reconcile: see summary.json."
  }</p>
<div class="grid">
<div>${table([
    ["inputs", capture.inputs.map((input) => `${input.file} (${input.records})`).join(", ")],
    ["first packet", capture.firstPacket ?? "-"],
    ["last packet", capture.lastPacket ?? "-"],
    ["span (s)", capture.spanSeconds],
    ["warnings", capture.warnings.length],
  ])}</div>
<div>${countsTable("Record classes", packets.classes, "classes")}</div>
<div>${countsTable("Verdicts", packets.verdicts, "verdicts")}</div>
<div>${countsTable("Connections by protocol", connections.byProtocol, "by-protocol")}</div>
<div>${countsTable("Connections by end reason", connections.byEndReason, "by-end-reason")}</div>
<div>${countsTable("Final states", connections.byFinalState, "by-final-state")}</div>
<div>${countsTable("Orphans by kind", orphans?.byKind ?? {}, "orphans-by-kind")}</div>
<div><h3>Top talkers (bytes)</h3>${
    summary.topTalkers.length === 0
      ? `<p class="none">none</p>`
      : `<table class="kv">${summary.topTalkers
          .map(
            (talker) =>
              `<tr><th>${escapeHtml(talker.address)}</th><td>${talker.bytes} B, ${talker.packets} pkts, ${talker.flows} flows</td></tr>`,
          )
          .join("")}</table>`
  }</div>
</div></section>`;
}

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:0 1.5em 3em;color:#222}
h1{font-size:1.4em}h2{border-bottom:1px solid #ccc;margin-top:1.6em}h3{font-size:1em;margin:.8em 0 .3em}
.cards{display:flex;gap:1em;flex-wrap:wrap}.card{border:1px solid #ccc;border-radius:6px;padding:.5em 1em;min-width:8em}
.card .n{font-size:1.6em;font-weight:600}.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(22em,1fr));gap:0 2em}
table{border-collapse:collapse}td,th{padding:2px 8px;text-align:left;vertical-align:top}
table.kv th{font-weight:normal;color:#555}.ok{color:#2a7a2a}.bad{color:#b00;font-weight:600}.none{color:#888}
table.data{font-size:12px;width:100%}table.data th{background:#f0f0f0;cursor:pointer;position:sticky;top:0;white-space:nowrap}
table.data tr:nth-child(even) td{background:#fafafa}table.data td{font-family:ui-monospace,monospace;white-space:nowrap}
.note{color:#666;font-style:italic}.filter{margin:.5em 0;padding:4px;width:30em}
#timeline .row{display:flex;align-items:center;height:14px;margin:1px 0}#timeline .label{width:22em;font:11px ui-monospace,monospace;overflow:hidden;white-space:nowrap;text-overflow:ellipsis}
#timeline .track{position:relative;flex:1;height:12px;background:#f6f6f6}#timeline .seg{position:absolute;top:0;height:12px;min-width:1px}
.legend span{display:inline-block;margin-right:1em}.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}
`;

/** The page's script: builds tables and the timeline from the JSON block with textContent only. */
const SCRIPT = `
"use strict";
const data = JSON.parse(document.getElementById("report-data").textContent);
function cell(row, text) { const td = document.createElement("td"); td.textContent = text === null || text === undefined ? "" : String(text); row.appendChild(td); }
function tuple(t) { return t.sport !== undefined ? t.src + ":" + t.sport + " > " + t.dst + ":" + t.dport : t.type !== undefined ? t.src + " > " + t.dst + " type=" + t.type + " id=" + t.id : t.src + " > " + t.dst; }
function history(f) { return f.history.map((h) => h.state + "@" + h.offset.toFixed(3)).join(" > ") + (f.historyOmitted > 0 ? " …" : ""); }
function makeTable(id, columns, rows) {
  const table = document.getElementById(id);
  const head = table.createTHead().insertRow();
  const body = table.createTBody();
  let sortColumn = -1, ascending = true;
  columns.forEach((column, index) => {
    const th = document.createElement("th");
    th.textContent = column[0];
    th.addEventListener("click", () => { ascending = sortColumn === index ? !ascending : true; sortColumn = index; render(); });
    head.appendChild(th);
  });
  const values = rows.map((row) => columns.map((column) => column[1](row)));
  const filter = document.getElementById(id + "-filter");
  function render() {
    const needle = filter ? filter.value.trim().toLowerCase() : "";
    let shown = values.filter((row) => needle === "" || row.some((v) => String(v ?? "").toLowerCase().includes(needle)));
    if (sortColumn >= 0) {
      shown = shown.slice().sort((a, b) => {
        const x = a[sortColumn], y = b[sortColumn];
        const order = typeof x === "number" && typeof y === "number" ? x - y : String(x ?? "").localeCompare(String(y ?? ""), undefined, { numeric: true });
        return ascending ? order : -order;
      });
    }
    body.replaceChildren();
    for (const row of shown) { const tr = body.insertRow(); for (const v of row) cell(tr, v); }
    const count = document.getElementById(id + "-count");
    if (count) count.textContent = shown.length + " of " + values.length + " rows";
  }
  if (filter) filter.addEventListener("input", render);
  render();
}
makeTable("flows", [
  ["id", (f) => f.id], ["proto", (f) => f.protocol], ["original", (f) => tuple(f.original)], ["reply", (f) => tuple(f.reply)],
  ["nat", (f) => f.nat], ["first", (f) => f.firstPacket], ["duration s", (f) => f.duration], ["history", history],
  ["final", (f) => f.finalState], ["end", (f) => f.endDetail], ["flags", (f) => f.flags.join(" ")],
  ["pkts >", (f) => f.originalPackets], ["bytes >", (f) => f.originalBytes], ["pkts <", (f) => f.replyPackets], ["bytes <", (f) => f.replyBytes],
  ["helper", (f) => f.helper], ["master", (f) => f.masterId], ["community id", (f) => f.communityId],
], data.flows);
const endpoint = (e) => e.address + (e.port !== null ? (e.address.includes(":") ? "." : ":") + e.port : "");
makeTable("nat", [
  ["proto", (m) => m.protocol], ["kind", (m) => m.kind], ["inside", (m) => endpoint(m.inside)],
  ["outside", (m) => endpoint(m.outside)], ["remote", (m) => endpoint(m.remote)], ["first", (m) => m.firstSeen],
  ["last", (m) => m.lastSeen], ["connections", (m) => m.connections], ["bytes", (m) => m.bytes],
  ["origin", (m) => m.origin], ["port", (m) => m.portChoice], ["ids", (m) => m.connectionIds.join(" ")],
], data.nat);
makeTable("orphans", [
  ["input", (o) => o.input], ["packet", (o) => o.packet], ["time", (o) => o.time], ["proto", (o) => o.protocol],
  ["src", (o) => o.src + (o.sport !== null ? ":" + o.sport : "")], ["dst", (o) => o.dst + (o.dport !== null ? ":" + o.dport : "")],
  ["flags", (o) => o.tcpFlags ?? (o.icmpType !== null ? "type " + o.icmpType + " code " + o.icmpCode : "")],
  ["kind", (o) => o.kind], ["reason", (o) => o.reason], ["nearest", (o) => o.nearestConnection],
], data.orphans);
(function timeline() {
  const host = document.getElementById("timeline");
  const flows = data.flows.slice(0, data.timelineRows);
  if (flows.length === 0) { host.textContent = "no connections"; return; }
  const time = (iso) => Date.parse(iso.slice(0, 23) + "Z") / 1000 + Number("0." + iso.slice(23, 26).padEnd(3, "0")) / 1000;
  const endOf = (f) => f.endTime ?? data.endOfInput ?? f.lastPacket;
  let start = Infinity, end = -Infinity;
  for (const f of flows) { start = Math.min(start, time(f.firstPacket)); end = Math.max(end, time(endOf(f))); }
  const span = Math.max(end - start, 1e-6);
  for (const f of flows) {
    const row = document.createElement("div"); row.className = "row";
    const label = document.createElement("div"); label.className = "label";
    label.textContent = f.id + " " + f.protocol + " " + tuple(f.original); label.title = f.endDetail;
    const track = document.createElement("div"); track.className = "track";
    const finish = time(endOf(f));
    f.history.forEach((h, i) => {
      const from = time(h.time);
      const to = i + 1 < f.history.length ? time(f.history[i + 1].time) : finish;
      const seg = document.createElement("div"); seg.className = "seg";
      seg.style.left = ((from - start) / span * 100) + "%";
      seg.style.width = (Math.max(to - from, 0) / span * 100) + "%";
      seg.style.background = data.colours[h.state] || "#999";
      seg.title = h.state + " from +" + h.offset.toFixed(3) + " s";
      track.appendChild(seg);
    });
    row.append(label, track); host.appendChild(row);
  }
})();
`;

export function renderHtmlReport(input: HtmlReportInput): string {
  const { summary } = input;
  const shownFlows = input.flows.length;
  const timelineShown = Math.min(shownFlows, input.timelineRows);
  const data = {
    flows: input.flows,
    orphans: input.orphans,
    nat: input.natMappings,
    timelineRows: input.timelineRows,
    colours: STATE_COLOURS,
    endOfInput: summary.capture.lastPacket,
  };
  const capNote = (shown: number, total: number, what: string, file: string): string =>
    shown < total
      ? `<p class="note">The page shows the first ${shown} of ${total} ${what}; ${file} has them all.</p>`
      : "";
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>${escapeHtml(input.title)}</title><style>${STYLE}</style></head>
<body><h1>${escapeHtml(input.title)}</h1><p class="note">${escapeHtml(input.generator)}</p>
${summarySection(summary)}
<section><h2>Flows</h2>${capNote(shownFlows, input.totalFlows, "connections", "flows.csv")}
<input class="filter" id="flows-filter" placeholder="filter flows (any column)" aria-label="filter flows"> <span id="flows-count"></span>
<table class="data" id="flows"></table></section>
<section><h2>Lifecycle timeline</h2>${
    timelineShown < input.totalFlows
      ? `<p class="note">The timeline draws the first ${timelineShown} of ${input.totalFlows} connections.</p>`
      : ""
  }
<div class="legend">${Object.entries(STATE_COLOURS)
    .map(([state, colour]) => `<span><i style="background:${colour}"></i>${escapeHtml(state)}</span>`)
    .join("")}</div>
<div id="timeline"></div></section>
<section><h2>NAT</h2><p class="note">Mappings: an inside endpoint leaving as an outside one, towards a remote one
(connections whose reply tuple is not the inverted original).</p>${capNote(
    input.natMappings.length,
    input.totalNatMappings,
    "NAT mappings",
    "nat.csv",
  )}
<span id="nat-count"></span><table class="data" id="nat"></table></section>
<section><h2>Orphaned packets</h2>${capNote(input.orphans.length, input.totalOrphans, "orphaned packets", "orphans.csv")}
<input class="filter" id="orphans-filter" placeholder="filter orphans" aria-label="filter orphans"> <span id="orphans-count"></span>
<table class="data" id="orphans"></table></section>
<script type="application/json" id="report-data">${jsonForScript(data)}</script>
<script>${SCRIPT}</script>
</body></html>
`;
}
