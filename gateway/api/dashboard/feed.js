// The live feed: the task events of the active jobs, as /ws/tasks pushes them, and each
// task's latest state (seeded from the job rooms' snapshots).

import { getJson } from "./api.js";
import { accountLink, badge, h, note, panel, table, txLink, wei, when } from "./dom.js";
import { taskRooms } from "./live.js";

const JOBS_EVERY_MS = 5_000;
const ROOMS = 60; // the gateway allows 64 rooms per connection; a job page may hold one more
const EVENTS_KEPT = 200;
const TASKS_SHOWN = 30;
const TASKS_KEPT = 500; // snapshots of many jobs, bounded

/** The feed: subscribes to the latest active jobs' rooms (new jobs are found every few seconds). */
export function feedPage(root) {
  const state = h("span", { class: "state" });
  const events = h("ol", { class: "events" }, h("li", { class: "muted placeholder" }, "Waiting for task events…"));
  const latest = h("div", {}, note("Loading…"));
  const scope = h("p", { class: "muted" });
  const tasks = new Map();
  const rooms = new Map(); // job id -> leave()
  let eventCount = 0;

  root.append(
    panel("Live feed", h("div", { class: "feed-head" }, state, scope), events),
    panel("Latest tasks", latest),
  );
  const stopState = taskRooms.connection.watchState((now) => {
    state.className = `state state-${now}`;
    state.textContent = now;
  });

  const drawTasks = () => {
    const shown = [...tasks.values()].sort((a, b) => b.id - a.id).slice(0, TASKS_SHOWN);
    const rows = shown.map((task) => {
      const attempt = task.attempts[task.attempts.length - 1];
      return [
        `#${task.id}`, h("a", { href: `#/job/${task.jobId}` }, `job #${task.jobId}`), badge(task.status),
        when(task.fireAt), attempt ? accountLink(attempt.performer) : "—", wei(task.fee), txLink(task.submissionTx),
      ];
    });
    const headers = ["Task", "Job", "Status", "Fired", "Performer", "Fee", "Attestation"];
    latest.replaceChildren(rows.length ? table(headers, rows, (i) => ({ "data-task-id": shown[i].id })) : note("No task yet."));
  };

  const take = (task) => {
    tasks.set(task.id, task);
    if (tasks.size > TASKS_KEPT) tasks.delete(Math.min(...tasks.keys()));
  };
  const onFrame = (frame) => {
    if (frame.type === "JOB_TASKS_SNAPSHOT") {
      frame.tasks.forEach(take);
      drawTasks();
    } else if (frame.task) {
      take(frame.task);
      drawTasks();
      if (eventCount++ === 0) events.replaceChildren();
      events.prepend(eventRow(frame));
      while (events.children.length > EVENTS_KEPT) events.lastChild.remove();
    }
  };

  const followJobs = async () => {
    let active;
    try {
      active = (await getJson("/api/jobs", { status: "active", limit: 500 })).jobs;
    } catch (failure) {
      scope.textContent = `Could not read the active jobs: ${failure.message}`;
      return;
    }
    const chosen = active.map((job) => job.id).sort((a, b) => b - a).slice(0, ROOMS);
    for (const [id, leave] of rooms) if (!chosen.includes(id)) { leave(); rooms.delete(id); }
    for (const id of chosen) if (!rooms.has(id)) rooms.set(id, taskRooms.watch(`job:${id}`, onFrame));
    scope.textContent = active.length > ROOMS
      ? `Following the latest ${ROOMS} of ${active.length} active jobs.`
      : `Following ${active.length} active job${active.length === 1 ? "" : "s"}.`;
    if (!active.length) latest.replaceChildren(note("No active job."));
  };
  followJobs();
  const timer = setInterval(followJobs, JOBS_EVERY_MS);
  return () => {
    clearInterval(timer);
    stopState();
    for (const leave of rooms.values()) leave();
  };
}

const KINDS = { TASK_CREATED: "created", TASK_UPDATED: "updated", TASK_STATUS_CHANGED: "status" };

function eventRow(frame) {
  const task = frame.task;
  const change = frame.previousStatus
    ? [badge(frame.previousStatus), h("span", { class: "arrow" }, "→"), badge(task.status)]
    : [badge(task.status)];
  return h("li", { class: "event", "data-task-id": task.id, "data-job-id": task.jobId, "data-status": task.status,
    "data-kind": frame.type },
    h("span", { class: "event-time" }, new Date().toLocaleTimeString("en-GB")),
    h("span", { class: "event-kind" }, KINDS[frame.type] || frame.type),
    h("span", {}, `task #${task.id} of `, h("a", { href: `#/job/${task.jobId}` }, `job #${task.jobId}`)),
    h("span", { class: "change" }, change));
}
