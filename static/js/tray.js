// Generate in place. The prompt form is sent with fetch and the server answers with only
// what a post changes on the form page (jobs/_form_answer.html: a fresh submission key, the
// form's messages and field errors, the tray's news and the videos the post made, the
// budgets), drawn by the page's own partials and merged into this page, so what was typed
// stays and the tray's videos keep playing. Each region marked data-swap is replaced; new
// videos go on top of the tray, and the tray keeps the items the server still names.
// Without JavaScript the same post answers the whole page.
//
// The tray stays live like the job page (live-parts.js): every part (status, player, cost,
// note) is drawn by the server's partials and comes in the status JSON's `html`; a finished
// video starts playing (muted, so the browser allows it) where it appeared.
(function () {
  "use strict";

  var form = document.getElementById("job-form");
  var list = document.getElementById("tray-items");
  var main = document.querySelector("main[data-status-url]");
  var endpoint = main && main.dataset.statusUrl;
  if (!form || !list || !window.KlingLive) return;
  var all = window.KlingLive.all;

  // --- sending the form in place ----------------------------------------------------------

  var sending = false;
  form.addEventListener("submit", function (event) {
    if (!window.fetch || !window.DOMParser) return; // a plain post answers the same page
    event.preventDefault();
    if (sending) return;
    sending = true;
    fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
      headers: { Accept: "text/html", "X-Requested-With": "fetch" },
    })
      .then(function (response) {
        return response.text().then(function (html) {
          var reply = new DOMParser().parseFromString(html, "text/html");
          // Anything but the form's answer (signed out, an error page): let the browser show it.
          if (response.redirected || !reply.getElementById("form-answer")) throw new Error("not the answer");
          return reply;
        });
      })
      .then(function (reply) {
        sending = false;
        answer(reply);
      })
      .catch(function () {
        // The key makes a second post of the same form harmless: it sends nothing twice.
        sending = false;
        HTMLFormElement.prototype.submit.call(form);
      });
  });

  function answer(reply) {
    all(reply, "[data-swap][id]").forEach(function (next) {
      var here = document.getElementById(next.id);
      if (here) here.replaceWith(document.importNode(next, true));
    });
    // A field is marked while its errors (just swapped in) say something.
    all(form, ".field[id]").forEach(function (field) {
      var errors = field.querySelector(".field-errors");
      if (errors) field.classList.toggle("has-error", errors.children.length > 0);
    });
    var added = merge(reply.getElementById("tray-items"));
    // "?from=…" has done its work: a reload shows the form as it is now.
    if (window.location.search) window.history.replaceState(null, "", window.location.pathname);
    document.dispatchEvent(new CustomEvent("formanswered"));
    if (added.length) reveal(added[0]);
    live.restart();
  }

  // The post's videos go on top; the items already here stay (a playing video is never
  // moved) while the server's tray still holds them (data-keep: its ids, newest first).
  function merge(next) {
    if (!next) return [];
    var kept = {};
    var fresh = {};
    var added = [];
    var first = list.firstElementChild;
    (next.dataset.keep || "").split(",").forEach(function (id) {
      kept[id] = true;
    });
    all(next, ":scope > [data-tray-job]").forEach(function (item) {
      var id = item.dataset.trayJob;
      fresh[id] = item.classList.contains("is-new");
      if (list.querySelector('[data-tray-job="' + id + '"]')) return;
      var node = document.importNode(item, true);
      list.insertBefore(node, first);
      live.remember(node);
      added.push(node);
    });
    all(list, ":scope > [data-tray-job]").forEach(function (item) {
      var id = item.dataset.trayJob;
      if (!kept[id]) item.remove();
      else item.classList.toggle("is-new", fresh[id] === true);
    });
    var empty = document.getElementById("tray-empty");
    if (empty) empty.hidden = list.children.length > 0;
    return added;
  }

  function reveal(item) {
    var box = item.getBoundingClientRect();
    if (box.top < 0 || box.bottom > window.innerHeight) {
      item.scrollIntoView({ block: "nearest", behavior: "smooth" });
    }
  }

  // --- keeping the tray live --------------------------------------------------------------

  var live = window.KlingLive.watch(list, endpoint, {
    parts: function () {
      return ["status", "player", "cost"];
    },
    within: function (job) {
      return list.querySelector('[data-tray-job="' + job.id + '"]');
    },
    changed: function (el, part) {
      if (part === "player") play(el);
    },
  });

  // The result plays where it appeared, muted (which lets a page start a video by itself).
  function play(player) {
    var video = player.querySelector("video");
    if (!video) return;
    video.muted = true;
    video.playsInline = true;
    var started = video.play();
    if (started && started.catch) started.catch(function () {});
    player.closest(".tray-item").classList.add("is-ready");
  }
})();
