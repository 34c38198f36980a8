// The dashboard's entry: the routes (#/jobs, #/job/<id>, #/feed, #/keepers, #/leaderboards,
// #/stats), the navigation, and the clock that keeps relative times current.

import { getJson } from "./api.js";
import { h, note, setExplorer, tickClocks } from "./dom.js";
import { feedPage } from "./feed.js";
import { jobPage, jobsPage } from "./jobs.js";
import { keepersPage, leaderboardsPage, statsPage } from "./network.js";

const PAGES = {
  jobs: { title: "Jobs", show: (root, query) => jobsPage(root, query) },
  job: { title: "Job", nav: "jobs", show: (root, _query, id) => jobPage(root, id) },
  feed: { title: "Live feed", show: (root) => feedPage(root) },
  keepers: { title: "Keepers", show: (root) => keepersPage(root) },
  leaderboards: { title: "Leaderboards", show: (root) => leaderboardsPage(root) },
  stats: { title: "Network stats", show: (root) => statsPage(root) },
};

const main = document.getElementById("page");
let leave = () => {};

/** Show the page the location's hash names (`#/name/arg?query`); unknown ones say so. */
function route() {
  const [path, search = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const [name = "jobs", arg] = path.split("/");
  const page = PAGES[name || "jobs"];
  leave();
  leave = () => {};
  main.replaceChildren();
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("current", link.dataset.page === (page?.nav || name || "jobs"));
  }
  if (!page || (name === "job" && !/^[1-9][0-9]{0,18}$/.test(arg || ""))) {
    document.title = "Not found · TriggerX";
    main.append(note(`No such page: ${location.hash}`, "error"), h("a", { href: "#/jobs" }, "Back to the jobs"));
    return;
  }
  document.title = `${page.title}${arg ? ` #${arg}` : ""} · TriggerX`;
  leave = page.show(main, new URLSearchParams(search), arg) || leave;
  window.scrollTo(0, 0);
}

async function start() {
  try {
    setExplorer((await getJson("/dashboard/config.json")).explorerUrl);
  } catch {
    setExplorer(null); // links are a convenience: the hashes still show
  }
  addEventListener("hashchange", route);
  route();
  setInterval(tickClocks, 1000);
}

start();
