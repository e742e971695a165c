// The live parts of the jobs on a page, shared by live-status.js (the history, the job page,
// compare) and tray.js (the form's tray). The server draws each live part (status, note,
// timeline, player, charge, thumbnail) with the templates the page itself uses and sends
// them in the status JSON as `html`; a part is swapped into the element marked
// data-role="<part>" data-job-id="<id>" only when it changed, so a live region announces
// news, not every poll, and a playing video is left alone. The only thing drawn here is the
// countdown to the estimated completion, which ticks every second and only where the
// server asked for it (data-countdown-to): a late or stuck job's wording always comes from
// the server. The server is asked only while something is in flight, less often after a
// failed answer.
(function () {
  "use strict";

  var POLL_MS = 2000;
  var MAX_POLL_MS = 30000;

  function all(root, selector) {
    return Array.prototype.slice.call(root.querySelectorAll(selector));
  }

  function unique(values) {
    return values.filter(function (value, i) {
      return values.indexOf(value) === i;
    });
  }

  // The server's HTML as the browser writes it out once parsed, so that it compares equal
  // to the same markup already in the page.
  function normalise(html) {
    var template = document.createElement("template");
    template.innerHTML = html;
    return template.innerHTML.trim();
  }

  // Keep the jobs under `root` live through the status JSON at `endpoint`. Options:
  // parts() names the parts to ask for; within(job) is where that job's parts are (default
  // `root`; nothing: skip it); changed(el, part) follows a part that was swapped in;
  // updated(job) follows each job of an answer. Returns {remember(el), restart()}: take in
  // new parts as they are shown now, and ask again soon.
  function watch(root, endpoint, options) {
    var delay = POLL_MS;
    var timer = null;
    var clockSkew = 0; // server time minus browser time, in ms
    var shown = new WeakMap(); // the HTML each live part shows

    function inFlightIds() {
      return unique(
        all(root, '[data-role="status"][data-in-flight="1"]').map(function (el) {
          return el.dataset.jobId;
        })
      );
    }

    function schedule(ms) {
      clearTimeout(timer);
      if (endpoint && inFlightIds().length) timer = setTimeout(poll, ms);
    }

    function poll() {
      var ids = inFlightIds();
      if (!ids.length) return;
      fetch(endpoint + "?ids=" + ids.join(",") + "&parts=" + options.parts().join(","), {
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

    function swap(el, html) {
      var next = normalise(html);
      if (shown.get(el) === next) return false;
      shown.set(el, next);
      el.innerHTML = next;
      return true;
    }

    function update(job) {
      var scope = options.within ? options.within(job) : root;
      if (!scope) return;
      var html = job.html || {};
      Object.keys(html).forEach(function (part) {
        all(scope, '[data-role="' + part + '"][data-job-id="' + job.id + '"]').forEach(function (el) {
          if (swap(el, html[part]) && options.changed) options.changed(el, part);
        });
      });
      all(scope, '[data-role="status"][data-job-id="' + job.id + '"]').forEach(function (el) {
        el.dataset.inFlight = job.inFlight ? "1" : "0";
      });
      if (options.updated) options.updated(job);
      renderCountdowns();
    }

    function countdownText(el) {
      var left = Math.round((Date.parse(el.dataset.countdownTo) - (Date.now() + clockSkew)) / 1000);
      // Past the estimate: the server's next answer says how late it is.
      if (isNaN(left) || left < 0) return "";
      return "about " + Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0") + " left";
    }

    function renderCountdowns() {
      all(root, "[data-countdown-to]").forEach(function (el) {
        var text = countdownText(el);
        if (el.textContent !== text) el.textContent = text;
      });
    }

    // What the server drew into the page is what is shown now (before the countdown writes).
    function remember(within) {
      all(within, "[data-role][data-job-id]").forEach(function (el) {
        shown.set(el, el.innerHTML.trim());
      });
    }

    remember(root);
    renderCountdowns();
    setInterval(renderCountdowns, 1000);
    schedule(POLL_MS);
    return {
      remember: remember,
      restart: function () {
        schedule(POLL_MS);
      },
    };
  }

  window.KlingLive = { watch: watch, all: all, unique: unique };
})();
