// Keeps every job shown on the page up to date without a reload. The server draws each
// live part (status, note, timeline, player, charge, thumbnail) with the templates the
// page itself uses, and sends them in the status JSON as `html`; this swaps in the parts
// that changed, into the element marked data-role="<part>" data-job-id="<id>". The only
// thing drawn here is the countdown to the estimated completion, which ticks every second
// and only where the server asked for it (data-countdown-to): a late or stuck job's
// wording always comes from the server. It asks the server only while something is in flight.
(function () {
  "use strict";

  var main = document.querySelector("main[data-status-url]");
  var endpoint = main && main.dataset.statusUrl;
  if (!endpoint) return;

  var POLL_MS = 2000;
  var MAX_POLL_MS = 30000;
  var delay = POLL_MS;
  var timer = null;
  var clockSkew = 0; // server time minus browser time, in ms
  // The HTML each live part last showed, as the browser writes it out. A part is replaced
  // only when the server's differs, so a live region announces news, not every poll (and
  // a playing video is left alone).
  var shown = new WeakMap();

  function all(selector) {
    return Array.prototype.slice.call(document.querySelectorAll(selector));
  }

  function inFlightIds() {
    var ids = all('[data-role="status"][data-in-flight="1"]').map(function (el) {
      return el.dataset.jobId;
    });
    return ids.filter(function (id, i) {
      return ids.indexOf(id) === i;
    });
  }

  function schedule(ms) {
    clearTimeout(timer);
    if (inFlightIds().length) timer = setTimeout(poll, ms);
  }

  // The parts this page shows: the server draws only those.
  function partNames() {
    var names = all("[data-role][data-job-id]").map(function (el) {
      return el.dataset.role;
    });
    return names.filter(function (name, i) {
      return names.indexOf(name) === i;
    });
  }

  function poll() {
    var ids = inFlightIds();
    if (!ids.length) return;
    fetch(endpoint + "?ids=" + ids.join(",") + "&parts=" + partNames().join(","), {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (data) {
        clockSkew = Date.parse(data.serverTime) - Date.now();
        data.jobs.forEach(update);
        delay = POLL_MS;
        schedule(delay);
      })
      .catch(function () {
        delay = Math.min(delay * 2, MAX_POLL_MS);
        schedule(delay);
      });
  }

  // The server's HTML as the browser would write it out once parsed, so that it compares
  // equal to the same markup already in the page.
  function normalise(html) {
    var template = document.createElement("template");
    template.innerHTML = html;
    return template.innerHTML.trim();
  }

  function swap(el, html) {
    var next = normalise(html);
    if (shown.get(el) === next) return;
    shown.set(el, next);
    el.innerHTML = next;
  }

  function update(job) {
    var html = job.html || {};
    Object.keys(html).forEach(function (part) {
      all('[data-role="' + part + '"][data-job-id="' + job.id + '"]').forEach(function (el) {
        swap(el, html[part]);
      });
    });
    all('[data-role="status"][data-job-id="' + job.id + '"]').forEach(function (el) {
      el.dataset.inFlight = job.inFlight ? "1" : "0";
    });
    document.dispatchEvent(new CustomEvent("jobstatus", { detail: job }));
    renderCountdowns();
  }

  function countdownText(el) {
    var left = Math.round((Date.parse(el.dataset.countdownTo) - (Date.now() + clockSkew)) / 1000);
    // Past the estimate: the server's next answer says how late it is.
    if (isNaN(left) || left < 0) return "";
    var minutes = Math.floor(left / 60);
    var seconds = String(left % 60).padStart(2, "0");
    return "about " + minutes + ":" + seconds + " left";
  }

  function renderCountdowns() {
    all("[data-countdown-to]").forEach(function (el) {
      var text = countdownText(el);
      if (el.textContent !== text) el.textContent = text;
    });
  }

  // What the server drew into the page is what is shown now (before the countdown writes).
  all("[data-role][data-job-id]").forEach(function (el) {
    shown.set(el, el.innerHTML.trim());
  });
  renderCountdowns();
  setInterval(renderCountdowns, 1000);
  schedule(POLL_MS);
})();
