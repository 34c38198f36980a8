// The network's pages: keepers (online, uptime, activity sparklines), the leaderboards and
// the network stats as charts.

import { getJson } from "./api.js";
import { barChart, lineChart, sparkline } from "./charts.js";
import { accountLink, count, h, note, panel, seconds, table, wei, when } from "./dom.js";
import { keeperSamples, stats } from "./live.js";

const PAGE = 50;
const PANEL_CHROME = 38; // a panel's padding and border, px (style.css)
const GAP = 18; // between the charts' panels, px
const TWO_COLUMNS = matchMedia("(min-width: 901px)"); // as style.css lays the charts out

/** Every keeper the gateway hears from, with its tasks executed and attested per sample. */
export function keepersPage(root) {
  const grid = h("div", { class: "cards" }, note("Loading keepers…"));
  root.append(panel("Keepers", grid));
  return keeperSamples.watch((samples) => {
    if (samples.error && !samples.keepers.length) {
      grid.replaceChildren(note(`Could not read the keepers: ${samples.error}`, "error"));
      return;
    }
    const keepers = [...samples.keepers].sort((a, b) => (a.operatorId ?? 1e9) - (b.operatorId ?? 1e9));
    grid.replaceChildren(...(keepers.length
      ? keepers.map((keeper) => keeperCard(keeper, samples.history.get(keeper.address) || []))
      : [note("No keeper has sent a heartbeat to this gateway yet.")]));
  });
}

function keeperCard(keeper, history) {
  const deltas = (field) => history.slice(1).map((sample, i) => Math.max(0, sample[field] - history[i][field]));
  const executed = deltas("executed");
  const attested = deltas("attested");
  const uptime = Math.round(keeper.uptime * 1000) / 10;
  const meter = h("meter", { min: 0, max: 100, value: uptime, title: `${uptime} % online since first seen` });
  return h("article", { class: "card keeper", "data-address": keeper.address, "data-online": String(keeper.online) },
    h("header", {},
      h("span", { class: `dot ${keeper.online ? "online" : "offline"}` }),
      h("b", {}, keeper.operatorId === null ? "unregistered" : `operator ${keeper.operatorId}`),
      h("span", { class: keeper.online ? "online-text" : "offline-text" }, keeper.online ? "online" : "offline")),
    h("div", {}, accountLink(keeper.address)),
    h("div", { class: "uptime" }, "uptime ", meter, ` ${uptime} %`),
    h("div", { class: "muted" }, "last heartbeat ", when(keeper.lastSeen)),
    h("div", { class: "counts" },
      h("span", {}, h("i", { class: "swatch executed" }), `${count(keeper.tasksExecuted)} executed`),
      h("span", {}, h("i", { class: "swatch attested" }), `${count(keeper.tasksAttested)} attested`)),
    executed.length
      ? sparkline([
        { name: "executed", className: "executed", values: executed },
        { name: "attested", className: "attested", values: attested },
      ], 240, 40)
      : h("div", { class: "muted spark-wait" }, "activity: collecting samples…"),
    h("div", { class: "muted hint" }, "tasks per 5 s since this dashboard opened"));
}

/** The keepers' and the users' leaderboards, a page at a time. */
export function leaderboardsPage(root) {
  const keepers = board("/api/leaderboard/keepers", "keepers", ["#", "Keeper", "Operator", "Points", "Executed", "Attested"],
    (entry, rank) => [rank, accountLink(entry.address), entry.operatorId ?? "—", count(entry.points),
      count(entry.tasksExecuted), count(entry.tasksAttested)]);
  const users = board("/api/leaderboard/users", "users", ["#", "User", "Points", "Jobs run", "Tasks completed"],
    (entry, rank) => [rank, accountLink(entry.address), count(entry.points), count(entry.jobsRun),
      count(entry.tasksCompleted)]);
  root.append(h("div", { class: "columns" }, panel("Keepers by points", keepers), panel("Users by points", users)));
  return () => {};
}

function board(path, key, headers, cells) {
  const box = h("div", {}, note("Loading…"));
  const more = h("button", { type: "button", class: "more", hidden: true }, "Load more");
  const entries = [];
  let cursor = null;
  const load = async () => {
    more.disabled = true;
    try {
      const page = await getJson(path, { limit: PAGE, cursor });
      entries.push(...page[key]);
      cursor = page.cursor;
      more.hidden = cursor === null;
      const rows = entries.map((entry, i) => cells(entry, i + 1));
      box.replaceChildren(rows.length ? table(headers, rows, (i) => ({ "data-address": entries[i].address }), "board")
        : note("Nobody has points yet: they are counted as tasks complete."));
    } catch (failure) {
      box.replaceChildren(note(`Could not read the leaderboard: ${failure.message}`, "error"));
    }
    more.disabled = false;
  };
  more.addEventListener("click", load);
  load();
  return h("div", {}, box, more);
}

/** The network's pace: the latest figures, and charts of the pushes since the dashboard opened. */
export function statsPage(root) {
  const tiles = h("div", { class: "tiles" });
  const charts = h("div", { class: "chart-grid" });
  root.append(panel("Network", tiles), charts);
  const draw = (samples) => {
    const latest = samples[samples.length - 1];
    if (!latest) {
      tiles.replaceChildren(note("Waiting for the gateway's stats…"));
      return;
    }
    tiles.replaceChildren(
      tile("Tasks created / min", count(latest.tasksCreatedLastMinute)),
      tile("Tasks completed / min", count(latest.tasksCompletedLastMinute)),
      tile("Tasks failed / min", count(latest.tasksFailedLastMinute)),
      tile("Completed in the last hour", count(latest.tasksCompletedLastHour)),
      tile("Keepers online", count(latest.keepersOnline)),
      tile("Mean fee per task", wei(latest.meanFeePerTask)),
    );
    // Sized in the panels' own pixels: two columns on a wide screen (style.css), one below 900 px.
    if (!charts.clientWidth) return; // not laid out (a screenshot's resize): keep the last drawing
    const inner = charts.clientWidth - PANEL_CHROME;
    const half = TWO_COLUMNS.matches ? Math.floor((charts.clientWidth - GAP) / 2) - PANEL_CHROME : inner;
    const times = samples.map((sample) => sample.at);
    const pick = (field) => samples.map((sample) => (sample[field] === null ? null : Number(sample[field])));
    const fees = pick("meanFeePerTask");
    charts.replaceChildren(
      chartPanel("Tasks per minute", samples.length, lineChart({ times, width: half, format: (v) => count(v, 1), series: [
        { name: "created", className: "created", values: pick("tasksCreatedLastMinute") },
        { name: "completed", className: "completed", values: pick("tasksCompletedLastMinute") },
        { name: "failed", className: "failed", values: pick("tasksFailedLastMinute") },
      ] })),
      chartPanel("Mean fee per task", samples.length, fees.some((fee) => fee !== null)
        ? lineChart({ times, width: half, format: (v) => wei(Math.round(v)), series: [
          { name: "mean fee per task, last hour", className: "fee", values: fees },
        ] })
        : note("No fee recorded in the last hour.")),
      chartPanel("Latency, fire to approval", samples.length,
        lineChart({ times, width: inner, format: (v) => `${count(v, 1)} s`, series: [
          { name: "p50", className: "p50", values: pick("latencyP50Seconds") },
          { name: "p95", className: "p95", values: pick("latencyP95Seconds") },
          { name: "p99", className: "p99", values: pick("latencyP99Seconds") },
        ] }),
        h("h3", {}, "Now, over the last hour"),
        barChart([
          { name: "p50", className: "p50", value: latest.latencyP50Seconds },
          { name: "p95", className: "p95", value: latest.latencyP95Seconds },
          { name: "p99", className: "p99", value: latest.latencyP99Seconds },
        ], seconds, inner)),
    );
    charts.lastChild.classList.add("wide");
  };
  const stop = stats.watch(draw);
  const redraw = () => draw(stats.samples);
  addEventListener("resize", redraw);
  return () => { stop(); removeEventListener("resize", redraw); };
}

function tile(label, value) {
  return h("div", { class: "tile" }, h("div", { class: "tile-value" }, value), h("div", { class: "tile-label" }, label));
}

function chartPanel(title, samples, ...content) {
  const hint = samples < 2 ? h("p", { class: "muted hint" }, "A point every 5 s while this dashboard is open.") : null;
  return h("section", { class: "panel chart-panel" }, h("h2", {}, title), ...content, hint);
}
