// The Jobs page (filters, status, fire times) and a job's own page (its tasks, live).

import { getJson } from "./api.js";
import {
  accountLink, badge, count, h, note, panel, short, table, txLink, wei, when,
} from "./dom.js";
import { keeperSamples, taskRooms } from "./live.js";

const REFRESH_MS = 5_000;
const PAGE = 100;
const STATUSES = ["active", "paused", "ended", "deleted"];
const KINDS = ["interval", "cron", "time", "event", "condition"];
const TASKS_READ = 100; // the job room's snapshot holds its latest 100 too
const TASKS_STEP = 20; // shown at first, and added by each "Show more"

/** The jobs, filtered by the query's owner, status and kind; refreshed every few seconds. */
export function jobsPage(root, query) {
  const filters = { owner: query.get("owner") || "", status: query.get("status") || "", kind: query.get("kind") || "" };
  const list = h("div", {}, note("Loading jobs…"));
  const more = h("button", { type: "button", class: "more", hidden: true }, "Load more");
  let shown = PAGE;
  let cursor = null;

  async function load() {
    try {
      const page = await getJson("/api/jobs", { ...filters, limit: Math.min(500, shown) });
      cursor = page.cursor;
      more.hidden = cursor === null;
      list.replaceChildren(page.jobs.length ? jobsTable(page.jobs) : note("No job matches these filters."));
    } catch (failure) {
      list.replaceChildren(note(`Could not read the jobs: ${failure.message}`, "error"));
    }
  }

  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      const page = await getJson("/api/jobs", { ...filters, limit: PAGE, cursor });
      cursor = page.cursor;
      more.hidden = cursor === null;
      shown += page.jobs.length;
      list.querySelector("tbody")?.append(...jobsTable(page.jobs).querySelectorAll("tbody tr"));
    } catch (failure) {
      list.append(note(`Could not read more jobs: ${failure.message}`, "error"));
    }
    more.disabled = false;
  });

  root.append(panel("Jobs", filterForm(filters), list, more));
  load();
  const timer = setInterval(load, REFRESH_MS);
  return () => clearInterval(timer);
}

function filterForm(filters) {
  const owner = h("input", {
    name: "owner", value: filters.owner, placeholder: "0x… owner address", pattern: "0x[0-9a-fA-F]{40}",
    autocomplete: "off", spellcheck: "false",
  });
  const status = h("select", { name: "status" }, h("option", { value: "" }, "any status"),
    STATUSES.map((name) => h("option", { value: name, selected: name === filters.status }, name)));
  const kind = h("input", { name: "kind", value: filters.kind, placeholder: "any kind", list: "job-kinds" });
  const form = h("form", { class: "filters", role: "search" },
    h("label", {}, "Owner", owner),
    h("label", {}, "Status", status),
    h("label", {}, "Kind", kind, h("datalist", { id: "job-kinds" }, KINDS.map((name) => h("option", { value: name })))),
    h("button", { type: "submit" }, "Filter"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = new URLSearchParams();
    for (const field of [owner, status, kind]) if (field.value.trim()) chosen.set(field.name, field.value.trim());
    location.hash = `#/jobs${chosen.size ? `?${chosen}` : ""}`;
  });
  return form;
}

function jobsTable(jobs) {
  const rows = jobs.map((job) => [
    h("a", { href: `#/job/${job.id}` }, `#${job.id}`),
    job.spec.scheduleType,
    accountLink(job.owner),
    h("span", { class: "call" }, h("code", {}, job.spec.function), " on ", short(job.spec.target)),
    badge(job.status),
    when(job.lastFire),
    job.status === "active" ? when(job.nextFire, true) : h("span", { class: "muted" }, "—"),
    when(job.createdAt),
  ]);
  const headers = ["Job", "Kind", "Owner", "Call", "Status", "Last fire", "Next fire", "Created"];
  return table(headers, rows, (i) => ({ "data-job-id": jobs[i].id }), "jobs");
}

/** One job: its terms and fire times, and its tasks (latest first), kept live over /ws/tasks. */
export function jobPage(root, id) {
  const summary = h("div", {}, note("Loading the job…"));
  const taskList = h("div", { class: "tasks" }, note("Loading its tasks…"));
  const more = h("button", { type: "button", class: "more", hidden: true }, `Show ${TASKS_STEP} more`);
  const tasks = new Map();
  let shown = TASKS_STEP;
  root.append(panel(`Job #${id}`, summary), panel("Tasks, latest first", taskList, more));

  const draw = () => {
    const latest = [...tasks.values()].sort((a, b) => b.id - a.id);
    more.hidden = latest.length <= shown || shown >= TASKS_READ;
    const cards = latest.slice(0, shown).map(taskCard);
    taskList.replaceChildren(...(cards.length ? cards : [note("No task yet: it appears here when the job fires.")]));
  };
  more.addEventListener("click", () => { shown += TASKS_STEP; draw(); });
  const take = (task) => {
    const known = tasks.get(task.id);
    if (!known || known.updatedAt <= task.updatedAt) tasks.set(task.id, task);
    if (tasks.size > TASKS_READ) tasks.delete(Math.min(...tasks.keys())); // a long watch stays bounded
  };

  const refreshJob = async () => {
    try {
      summary.replaceChildren(jobSummary((await getJson(`/api/jobs/id/${id}`)).job));
    } catch (failure) {
      summary.replaceChildren(note(`Could not read job ${id}: ${failure.message}`, "error"));
    }
  };
  refreshJob();
  getJson(`/api/tasks/job/${id}`, { limit: TASKS_READ }).then(
    (page) => { page.tasks.forEach(take); draw(); },
    (failure) => taskList.replaceChildren(note(`Could not read its tasks: ${failure.message}`, "error")),
  );
  const leave = taskRooms.watch(`job:${id}`, (frame) => {
    if (frame.type === "JOB_TASKS_SNAPSHOT") frame.tasks.forEach(take);
    else if (frame.task) take(frame.task);
    else return;
    draw();
  });
  const timer = setInterval(refreshJob, REFRESH_MS);
  return () => { leave(); clearInterval(timer); };
}

function jobSummary(job) {
  const spec = job.spec;
  const facts = [
    ["Status", badge(job.status)],
    ["Owner", accountLink(job.owner)],
    ["Target", accountLink(spec.target)],
    ["Function", h("code", {}, spec.function)],
    ["Arguments", spec.script ? `from script ${spec.script.cid}` : h("code", {}, JSON.stringify(spec.args))],
    ["Trigger", h("span", {}, h("b", {}, spec.scheduleType), " ", h("code", { class: "wrap" }, JSON.stringify(spec.schedule)))],
    ["Last fire", when(job.lastFire)],
    ["Next fire", job.status === "active" ? when(job.nextFire, true) : "—"],
    ["Gas limit", count(spec.gasLimit)],
    ["Max fee per task", wei(spec.maxFeePerTask)],
    ["Created", when(job.createdAt)],
    ["Chain job id", short(job.chainJobId, 10)],
  ];
  if (job.condition) {
    const state = job.condition.error ? `cannot read: ${job.condition.error}` : job.condition.holds ? "holds" : "does not hold";
    facts.push(["Condition", `${state} (block ${job.condition.block ?? "—"})`]);
  }
  return h("dl", { class: "facts" }, facts.map(([name, value]) => [h("dt", {}, name), h("dd", {}, value)]));
}

function taskCard(task) {
  const rows = task.attempts.map((attempt) => [
    `#${attempt.number}`,
    accountLink(attempt.performer),
    when(attempt.assignedAt),
    txLink(attempt.txHash),
    wei(attempt.fee),
    attempt.outcome ? badge(attempt.outcome) : h("span", { class: "muted" }, "under way"),
    signers(attempt.signers),
  ]);
  return h("article", { class: "task", "data-task-id": task.id, "data-status": task.status },
    h("header", {},
      h("b", {}, `Task #${task.id}`), badge(task.status),
      h("span", { class: "muted" }, "fired ", when(task.fireAt)),
      h("span", {}, "fee ", wei(task.fee)),
      h("span", {}, "attestation ", txLink(task.submissionTx))),
    task.reason ? note(task.reason, "error") : null,
    rows.length
      ? table(["Attempt", "Performer", "Assigned", "Execution tx", "Fee", "Outcome", "Signers"], rows, () => ({}), "attempts")
      : note("No keeper assigned yet."));
}

function signers(ids) {
  if (!ids.length) return h("span", { class: "muted" }, "—");
  return h("span", { class: "chips" }, ids.map((id) => {
    const keeper = keeperSamples.byOperator(id);
    return h("span", { class: "chip", title: keeper ? keeper.address : `operator ${id}` }, `op ${id}`);
  }));
}
