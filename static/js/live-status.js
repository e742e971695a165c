// Keeps every job shown on the page up to date without a reload: status badge,
// progress, a countdown to the estimated completion, the charge, and the video
// once it is ready. It asks the server only while something is in flight.
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

  function all(selector) {
    return Array.prototype.slice.call(document.querySelectorAll(selector));
  }

  function widgets(id) {
    return all('.live-status[data-job-id="' + id + '"]');
  }

  function inFlightIds() {
    var ids = all('.live-status[data-in-flight="1"]').map(function (el) {
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

  function poll() {
    var ids = inFlightIds();
    if (!ids.length) return;
    fetch(endpoint + "?ids=" + ids.join(","), {
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

  function update(job) {
    widgets(job.id).forEach(function (el) {
      var badge = el.querySelector('[data-role="badge"]');
      badge.className = "badge badge-" + job.status;
      badge.textContent = job.label;
      var progress = el.querySelector('[data-role="progress"]');
      progress.value = job.progress;
      progress.textContent = job.progress + "%";
      progress.hidden = !job.inFlight;
      el.dataset.inFlight = job.inFlight ? "1" : "0";
      el.dataset.eta = job.eta || "";
      el.dataset.slow = job.slow ? "1" : "";
      el.dataset.stuck = job.stuck ? "1" : "";
    });
    all('[data-role="charge"][data-job-id="' + job.id + '"]').forEach(function (el) {
      // Only a change between charged and refunded is news; keep the server's notes otherwise.
      if (el.dataset.charged === String(job.charged)) return;
      el.dataset.charged = String(job.charged);
      el.textContent = job.charged ? job.charge : "nothing";
    });
    if (job.video) showVideo(job);
    else if (!job.inFlight) showNoVideo(job);
    showNote(job);
    document.dispatchEvent(new CustomEvent("jobstatus", { detail: job }));
    renderCountdowns();
  }

  function showVideo(job) {
    all('[data-role="player"][data-job-id="' + job.id + '"]').forEach(function (player) {
      if (player.querySelector("video")) return;
      var video = document.createElement("video");
      video.controls = true;
      video.preload = "metadata";
      video.src = job.video;
      if (job.poster) video.poster = job.poster;
      var link = document.createElement("a");
      link.className = "button";
      link.href = job.video;
      link.setAttribute("download", "");
      link.textContent = "Download video";
      var p = document.createElement("p");
      p.appendChild(link);
      player.replaceChildren(video, p);
    });
  }

  function showNoVideo(job) {
    all('[data-role="player"][data-job-id="' + job.id + '"] .placeholder p').forEach(function (p) {
      p.textContent = job.status === "completed" ? "PixelByte has not shared the video link yet." : "No video: " + job.label.toLowerCase() + ".";
    });
  }

  // The note is rendered on the server by the page's own template; swap it in when it changes.
  function showNote(job) {
    all('[data-role="note"][data-job-id="' + job.id + '"]').forEach(function (box) {
      var html = job.note || "";
      if (box.dataset.note === undefined && box.innerHTML.trim() === html) box.dataset.note = html;
      if (box.dataset.note === html) return;
      box.dataset.note = html;
      box.innerHTML = html;
    });
  }

  function countdownText(el) {
    if (el.dataset.inFlight !== "1") return "";
    if (el.dataset.stuck) return "Stuck — still checking";
    var eta = Date.parse(el.dataset.eta || "");
    if (isNaN(eta)) return "";
    var left = Math.round((eta - (Date.now() + clockSkew)) / 1000);
    if (el.dataset.slow || left < 0) return "Slower than usual";
    var minutes = Math.floor(left / 60);
    var seconds = String(left % 60).padStart(2, "0");
    return "about " + minutes + ":" + seconds + " left";
  }

  function renderCountdowns() {
    all(".live-status").forEach(function (el) {
      var eta = el.querySelector('[data-role="eta"]');
      if (eta) eta.textContent = countdownText(el);
    });
  }

  renderCountdowns();
  setInterval(renderCountdowns, 1000);
  schedule(POLL_MS);
})();
