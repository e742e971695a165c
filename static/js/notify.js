// Finished while you were away: toasts, the tab title and browser notifications (every page).
//
// Each signed-in page asks the studio (the URL in the top bar's data-finished-url) which of
// the person's own videos ended since its last look: every 12 s while the page is visible,
// less and less often while it is hidden, and at once when it is shown again. The first
// question of a tab only learns the server's time: videos that ended before the studio was
// opened are not announced. A page loaded in the same tab a little later (a link followed)
// carries on from the tab's last look (sessionStorage), so nothing ends unseen in between.
//
// What was announced is shared by all the person's tabs (localStorage, and the "storage"
// event that tells the others): a video is announced once, every open page shows its toast
// and counts it in the title ("(2) History · Kling Studio") until the person opens the video
// or dismisses the toast. The tab that announces it also shows a browser notification, if the
// person allowed them (asked only from a click on "Notify me") and is not looking at the page.
(function () {
  "use strict";

  var menu = document.querySelector("[data-finished-url]");
  if (!menu || !window.fetch) return;
  var endpoint = menu.dataset.finishedUrl;
  var user = menu.dataset.user || "";
  var SHARED_KEY = "kling-studio:finished:" + user;
  var TAB_KEY = "kling-studio:finished-cursor:" + user;

  var VISIBLE_MS = 12000;
  var HIDDEN_MS = 60000;
  var MAX_MS = 300000;
  var OVERLAP_MS = 60000; // asks about the last minute again: an end stamped just before its commit
  var CONTINUE_MS = 180000; // a page loaded this soon after its tab's last look carries on from it
  var TOAST_MS = 30 * 60000; // a toast is shown on every page this long, unless opened or dismissed
  var KEEP_MS = 24 * 3600000; // what was announced is forgotten after a day

  var title = document.title;
  var baseline = null; // the server's time at this tab's first look (ISO)
  var cursor = null; // the server's time at the last look (ISO)
  var hiddenDelay = HIDDEN_MS;
  var failures = 0;
  var timer = null;
  var busy = false;
  var stopped = false;
  var region = null;
  var here = (location.pathname.match(/^\/jobs\/(\d+)\/$/) || [])[1];

  // --- storage (either may be refused: blocked site data, full disks) ------------------------

  function storageOf(name) {
    try {
      var storage = window[name];
      storage.getItem(SHARED_KEY);
      return storage;
    } catch (e) {
      return null;
    }
  }

  var local = storageOf("localStorage");
  var session = storageOf("sessionStorage");

  function load(storage, key) {
    if (!storage) return null;
    try {
      return JSON.parse(storage.getItem(key)) || null;
    } catch (e) {
      return null;
    }
  }

  function save(storage, key, value) {
    if (!storage) return;
    try {
      storage.setItem(key, JSON.stringify(value));
    } catch (e) {
      /* this tab still shows what it found */
    }
  }

  var memory = { jobs: {} }; // the shared state when localStorage is refused

  function read() {
    var state = load(local, SHARED_KEY);
    if (!state || typeof state.jobs !== "object" || state.jobs === null) state = memory;
    var now = Date.now();
    Object.keys(state.jobs).forEach(function (id) {
      if (!(now - state.jobs[id].at < KEEP_MS)) delete state.jobs[id];
    });
    return state;
  }

  function write(state) {
    memory = state;
    save(local, SHARED_KEY, state);
    render(state);
  }

  function unseen(state) {
    return Object.keys(state.jobs)
      .map(function (id) { return state.jobs[id]; })
      .filter(function (job) { return !job.seen; })
      .sort(function (a, b) { return a.at - b.at || a.id - b.id; });
  }

  function markSeen(ids) {
    var state = read();
    ids.forEach(function (id) {
      if (state.jobs[id]) state.jobs[id].seen = true;
    });
    write(state);
  }

  // --- asking the studio ---------------------------------------------------------------------

  function since() {
    // Never before this tab's first look: what ended before the studio was open is old news.
    var from = Math.max(Date.parse(cursor) - OVERLAP_MS, Date.parse(baseline));
    return new Date(from).toISOString();
  }

  function poll() {
    clearTimeout(timer);
    if (busy || stopped) return;
    busy = true;
    var url = cursor ? endpoint + "?since=" + encodeURIComponent(since()) : endpoint;
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        // Signed out meanwhile: the answer is the sign-in page. Nothing more to ask.
        if (response.redirected) stopped = true;
        if (!response.ok || response.redirected) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (data) {
        cursor = data.serverTime;
        baseline = baseline || cursor;
        save(session, TAB_KEY, { baseline: baseline, cursor: cursor, at: Date.now() });
        announce(data.jobs || []);
        failures = 0;
      })
      .catch(function () {
        failures += 1;
      })
      .then(function () {
        busy = false;
        schedule();
      });
  }

  function schedule() {
    clearTimeout(timer);
    if (stopped) return;
    var delay;
    if (document.visibilityState === "hidden") {
      delay = hiddenDelay;
      hiddenDelay = Math.min(hiddenDelay * 2, MAX_MS);
    } else {
      hiddenDelay = HIDDEN_MS;
      delay = Math.min(VISIBLE_MS * Math.pow(2, failures), MAX_MS);
    }
    timer = setTimeout(poll, delay);
  }

  function announce(jobs) {
    var state = read();
    var fresh = jobs.filter(function (job) { return !state.jobs[job.id]; });
    if (!fresh.length) return;
    fresh.forEach(function (job) {
      state.jobs[job.id] = {
        id: job.id,
        status: job.status,
        label: job.label,
        prompt: job.prompt,
        url: job.url,
        at: Date.now(),
        // Its own page is open here, and shows the news itself.
        seen: String(job.id) === here,
      };
    });
    write(state);
    fresh.forEach(function (job) {
      if (String(job.id) !== here) notifyBrowser(job);
    });
  }

  // --- browser notifications ---------------------------------------------------------------

  function canNotify() {
    return "Notification" in window;
  }

  function notifyBrowser(job) {
    if (!canNotify() || Notification.permission !== "granted") return;
    // The toast says it to someone looking at the page.
    if (document.visibilityState === "visible" && document.hasFocus()) return;
    try {
      var note = new Notification(job.label, { body: job.prompt, tag: "kling-studio-job-" + job.id });
      note.onclick = function () {
        window.focus();
        markSeen([String(job.id)]);
        location.href = job.url;
        note.close();
      };
    } catch (e) {
      /* some browsers (Chrome on Android) allow notifications only from a service worker */
    }
  }

  function askPermission() {
    if (!canNotify()) return;
    var asked = Notification.requestPermission(function () { showPermission(); });
    if (asked && asked.then) asked.then(showPermission);
  }

  function permissionText() {
    if (!canNotify()) return "This browser cannot show notifications.";
    if (Notification.permission === "granted") return "On: this browser notifies you when a video of yours is ready or has failed.";
    if (Notification.permission === "denied") {
      return "Blocked in this browser. To turn them on, allow notifications for this site in the browser's settings.";
    }
    return "Off. Click “Notify me” and allow notifications when the browser asks.";
  }

  function showPermission() {
    document.querySelectorAll("[data-notify-state]").forEach(function (el) {
      el.textContent = permissionText();
    });
    document.querySelectorAll("[data-notify-permission]").forEach(function (button) {
      button.hidden = !canNotify() || Notification.permission !== "default";
    });
    render(read());
  }

  // --- toasts and the title ------------------------------------------------------------------

  function element(tag, className, text) {
    var el = document.createElement(tag);
    if (className) el.className = className;
    if (text) el.textContent = text;
    return el;
  }

  function ensureRegion() {
    if (region) return region;
    region = element("div", "toasts");
    region.setAttribute("role", "status");
    region.setAttribute("aria-live", "polite");
    region.setAttribute("aria-label", "Finished videos");
    document.body.appendChild(region);
    return region;
  }

  function toast(job) {
    var item = element("div", "toast toast-" + job.status);
    item.dataset.jobId = job.id;
    var text = element("p", "toast-text");
    text.appendChild(element("strong", "", job.label));
    if (job.prompt) text.appendChild(element("span", "toast-prompt", job.prompt));
    var open = element("a", "button primary toast-open", "Open");
    open.href = job.url;
    open.addEventListener("click", function () { markSeen([String(job.id)]); });
    var close = element("button", "toast-close", "×");
    close.type = "button";
    close.setAttribute("aria-label", "Dismiss: " + job.label);
    close.addEventListener("click", function () { markSeen([String(job.id)]); });
    item.appendChild(text);
    item.appendChild(open);
    item.appendChild(close);
    return item;
  }

  function tools(shown) {
    var bar = element("div", "toast-tools");
    if (canNotify() && Notification.permission === "default") {
      var ask = element("button", "link-button", "Notify me");
      ask.type = "button";
      ask.title = "Let this browser notify you when a video is ready, even in another window";
      ask.addEventListener("click", askPermission);
      bar.appendChild(ask);
    }
    if (shown.length > 1) {
      var all = element("button", "link-button", "Dismiss all");
      all.type = "button";
      all.addEventListener("click", function () {
        markSeen(shown.map(function (job) { return String(job.id); }));
      });
      bar.appendChild(all);
    }
    return bar.childNodes.length ? bar : null;
  }

  function render(state) {
    var waiting = unseen(state);
    document.title = waiting.length ? "(" + waiting.length + ") " + title : title;
    var now = Date.now();
    var shown = waiting.filter(function (job) { return now - job.at < TOAST_MS; });
    if (!shown.length && !region) return;
    var area = ensureRegion();
    // Toasts already on the page stay as they are (a screen reader hears only the new ones).
    var present = {};
    Array.prototype.slice.call(area.querySelectorAll(".toast")).forEach(function (item) {
      var keep = shown.some(function (job) { return String(job.id) === item.dataset.jobId; });
      if (keep) present[item.dataset.jobId] = item;
      else item.remove();
    });
    var oldTools = area.querySelector(".toast-tools");
    if (oldTools) oldTools.remove();
    shown.forEach(function (job) {
      if (!present[String(job.id)]) area.appendChild(toast(job));
    });
    var bar = shown.length ? tools(shown) : null;
    if (bar) area.appendChild(bar);
  }

  // --- start -------------------------------------------------------------------------------

  window.addEventListener("storage", function (event) {
    if (event.key === SHARED_KEY) render(read());
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") poll();
    else schedule();
  });
  document.querySelectorAll("[data-notify-permission]").forEach(function (button) {
    button.addEventListener("click", askPermission);
  });

  var tab = load(session, TAB_KEY);
  if (tab && tab.baseline && tab.cursor && Date.now() - tab.at < CONTINUE_MS) {
    baseline = tab.baseline;
    cursor = tab.cursor;
  }
  if (here) markSeen([here]);
  else render(read());
  showPermission();
  poll();
})();
