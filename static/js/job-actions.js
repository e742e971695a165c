// The job page's small actions: copy the prompt or the video's link, previous/next with
// the arrow keys, one post per confirm step, and the buttons that only make sense while
// the job is where it was. The player and the note are redrawn live (live-status.js), so
// clicks are caught on the document rather than on buttons that may be replaced.
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-target], [data-copy-link]");
    if (!button) return;
    var text;
    if (button.dataset.copyLink) {
      text = new URL(button.dataset.copyLink, document.baseURI).href;
    } else {
      var source = document.getElementById(button.dataset.copyTarget);
      text = source ? source.textContent : "";
    }
    copy(text).then(function () {
      flash(button, "Copied");
    }, function () {
      flash(button, "Could not copy");
    });
  });

  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () {
        return fallback(text);
      });
    }
    return fallback(text);
  }

  function fallback(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    document.body.appendChild(area);
    area.select();
    var done = false;
    try { done = document.execCommand("copy"); } catch (e) { /* nothing more to try */ }
    area.remove();
    return done ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function flash(button, word) {
    if (button.dataset.label === undefined) button.dataset.label = button.textContent;
    button.textContent = word;
    clearTimeout(button.flashTimer);
    button.flashTimer = setTimeout(function () {
      button.textContent = button.dataset.label;
    }, 1500);
  }

  // A confirm step (cancel, delete files, stop watching) posts once: a second click while
  // the first is on its way would only be told the job has moved on.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches("[data-once]")) return;
    if (form.dataset.sent) {
      event.preventDefault();
      return;
    }
    form.dataset.sent = "1";
    Array.prototype.forEach.call(document.querySelectorAll("[form='" + form.id + "']"), function (button) {
      button.disabled = true;
    });
    Array.prototype.forEach.call(form.querySelectorAll("button[type=submit]"), function (button) {
      button.disabled = true;
    });
  });

  // ← and → step to the newer and the older video, unless the keys are someone else's
  // (typing, a focused player seeking, a select).
  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey || event.shiftKey || event.defaultPrevented) return;
    var target = event.target;
    if (target.closest("input, textarea, select, video, audio, [contenteditable]")) return;
    var rel = { ArrowLeft: "prev", ArrowRight: "next" }[event.key];
    var link = rel && document.querySelector(".job-nav a[rel='" + rel + "']");
    if (link) window.location.href = link.href;
  });

  // A button that posts a form the page does not hold (the note offers "Stop watching"
  // to everyone it is drawn for; the form is there only for those who may) is not shown.
  function hideOrphans() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-needs-form]"), function (button) {
      button.hidden = !document.getElementById(button.getAttribute("form"));
    });
  }
  hideOrphans();

  document.addEventListener("jobstatus", function (event) {
    var job = event.detail;
    // Cancel (the button and its confirm step) goes away once the job has left the queue.
    if (job.status !== "pending") {
      document.querySelectorAll('[data-role="cancel"][data-job-id="' + job.id + '"]').forEach(function (el) {
        el.remove();
      });
    }
    hideOrphans();
  });
})();
