// Keeps every job shown on the page up to date without a reload (live-parts.js does the
// asking and swapping), and tells other scripts of each answer ("jobstatus" events).
(function () {
  "use strict";

  var main = document.querySelector("main[data-status-url]");
  var endpoint = main && main.dataset.statusUrl;
  if (!endpoint || !window.KlingLive) return;
  var live = window.KlingLive;

  live.watch(document, endpoint, {
    // The parts this page shows: the server draws only those.
    parts: function () {
      return live.unique(
        live.all(document, "[data-role][data-job-id]").map(function (el) {
          return el.dataset.role;
        })
      );
    },
    updated: function (job) {
      document.dispatchEvent(new CustomEvent("jobstatus", { detail: job }));
    },
  });
})();
