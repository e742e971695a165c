// Reviewing many videos: the history's filters, stacks, grid previews, stars and ratings, the
// choice of videos to compare, and the compare page's one control for every video. Everything
// here improves pages that already work without it: the marks are plain forms, "+2 more" is a
// link to the stack, "Compare" a form, and the compared videos have their own controls.
(function () {
  "use strict";

  var COMPARE_KEY = "studio.compare";
  var MIN_COMPARED = 2;
  var MAX_COMPARED = 4;

  function all(selector, root) {
    return Array.prototype.slice.call((root || document).querySelectorAll(selector));
  }

  // --- the filters ------------------------------------------------------------------------

  // On a wide screen the filters are always open (the stylesheet shows them even when folded;
  // this is for browsers that cannot style a folded <details>).
  all(".filter-fold").forEach(function (fold) {
    if (window.matchMedia("(min-width: 700px)").matches) fold.open = true;
  });

  // Sorting and page size apply as soon as they are chosen.
  all("[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () {
      if (select.form) select.form.requestSubmit();
    });
  });

  // --- stacks: "+2 more" opens the stack in place -----------------------------------------------

  document.addEventListener("click", function (event) {
    var toggle = event.target.closest("[data-stack-toggle]");
    if (!toggle) return;
    event.preventDefault();
    var members = all('[data-stack-member="' + toggle.dataset.stackToggle + '"]');
    var open = toggle.getAttribute("aria-expanded") !== "true";
    members.forEach(function (member) {
      member.hidden = !open;
    });
    if (!toggle.dataset.closedText) toggle.dataset.closedText = toggle.textContent;
    toggle.textContent = open ? "Show less" : toggle.dataset.closedText;
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    var head = toggle.closest("tr, [data-card]");
    if (head) head.classList.toggle("is-open", open);
  });

  // --- stars and ratings ------------------------------------------------------------------------

  function markButtons(form) {
    return all("button[type=submit]", form);
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches || !form.matches("form[data-marks]")) return;
    var submitter = event.submitter;
    if (!submitter || !submitter.name) return;
    event.preventDefault();
    var position = markButtons(form).indexOf(submitter);
    var body = new FormData(form, submitter);
    form.classList.add("is-saving");
    fetch(form.action, {
      method: "POST",
      body: body,
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (answer) {
        var focused = document.activeElement === submitter;
        all('form[data-marks="' + form.dataset.marks + '"]').forEach(function (shown) {
          var template = document.createElement("template");
          template.innerHTML = answer.html;
          var fresh = template.content.firstElementChild;
          // The redrawn form posts back to the page it is on, wherever the answer was drawn.
          var next = shown.querySelector("input[name=next]");
          var freshNext = fresh.querySelector("input[name=next]");
          if (next && freshNext) freshNext.value = next.value;
          shown.replaceWith(fresh);
          if (shown === form && focused && markButtons(fresh)[position]) markButtons(fresh)[position].focus();
        });
      })
      .catch(function () {
        // Let the browser post it the plain way (the answer is a redirect back here).
        form.classList.remove("is-saving");
        var carry = document.createElement("input");
        carry.type = "hidden";
        carry.name = submitter.name;
        carry.value = submitter.value;
        form.appendChild(carry);
        form.submit();
      });
  });

  // --- picking videos to compare (kept while moving between pages and filters) -----------------

  function picked() {
    try {
      var ids = JSON.parse(sessionStorage.getItem(COMPARE_KEY) || "[]");
      return Array.isArray(ids) ? ids.map(String) : [];
    } catch (e) {
      return [];
    }
  }

  function keep(ids) {
    try {
      sessionStorage.setItem(COMPARE_KEY, JSON.stringify(ids));
    } catch (e) {
      /* private mode: the choice lasts as long as the page */
    }
  }

  var compareForm = document.querySelector("[data-compare-form]");
  var chosen = picked();

  function showChosen() {
    if (!compareForm) return;
    var button = compareForm.querySelector("[data-compare-button]");
    var count = compareForm.querySelector("[data-compare-count]");
    var clear = compareForm.querySelector("[data-compare-clear]");
    var n = chosen.length;
    count.textContent = "(" + n + ")";
    button.disabled = n < MIN_COMPARED || n > MAX_COMPARED;
    button.classList.toggle("primary", !button.disabled);
    button.title =
      n > MAX_COMPARED
        ? "Compare up to " + MAX_COMPARED + " videos at once: untick " + (n - MAX_COMPARED)
        : n < MIN_COMPARED
          ? "Tick " + (MIN_COMPARED - n) + " more video" + (MIN_COMPARED - n === 1 ? "" : "s") + " to compare"
          : "Play the " + n + " videos side by side";
    clear.hidden = n === 0;
    // While videos are ticked, the button floats at the bottom of the screen, in reach.
    compareForm.classList.toggle("is-floating", n > 0);
    all("[data-compare-pick]").forEach(function (box) {
      box.checked = chosen.indexOf(box.value) !== -1;
    });
  }

  if (compareForm) {
    document.addEventListener("change", function (event) {
      var box = event.target;
      if (!box.matches || !box.matches("[data-compare-pick]")) return;
      chosen = chosen.filter(function (id) {
        return id !== box.value;
      });
      if (box.checked) chosen.push(box.value);
      keep(chosen);
      showChosen();
    });
    compareForm.addEventListener("submit", function (event) {
      event.preventDefault();
      if (chosen.length < MIN_COMPARED || chosen.length > MAX_COMPARED) return;
      window.location.href = compareForm.action + "?ids=" + chosen.join(",");
    });
    compareForm.querySelector("[data-compare-clear]").addEventListener("click", function () {
      chosen = [];
      keep(chosen);
      showChosen();
    });
    // Back from another page: the browser may have restored the boxes from its cache.
    window.addEventListener("pageshow", function () {
      chosen = picked();
      showChosen();
    });
    showChosen();
  }

  // --- the grid: a card plays its video, muted, while the pointer is over it (a tap on touch) -----

  var canHover = window.matchMedia("(hover: hover)").matches;

  function play(video) {
    var started = video.play();
    if (started && started.catch) started.catch(function () {});
  }

  function stopOthers(except) {
    all("[data-card-video]").forEach(function (video) {
      if (video !== except && !video.paused) video.pause();
    });
  }

  function watchCard(media) {
    if (media.dataset.watched) return;
    media.dataset.watched = "1";
    var card = media.closest("[data-card]");
    media.addEventListener("mouseenter", function () {
      var video = media.querySelector("[data-card-video]");
      if (!video || !canHover) return;
      play(video);
    });
    media.addEventListener("mouseleave", function () {
      var video = media.querySelector("[data-card-video]");
      if (!video) return;
      video.pause();
      video.currentTime = 0;
    });
    // On a touch screen the first tap plays (and a second pauses); the prompt opens the video.
    media.addEventListener("click", function (event) {
      var video = media.querySelector("[data-card-video]");
      if (!video || canHover || event.target.closest(".compare-pick")) return;
      event.preventDefault();
      if (video.paused) {
        stopOthers(video);
        play(video);
      } else {
        video.pause();
      }
    });
    media.addEventListener("playing", function () { card.classList.add("is-playing"); }, true);
    media.addEventListener("pause", function () { card.classList.remove("is-playing"); }, true);
  }

  all("[data-card] .card-media").forEach(watchCard);

  // A job that finishes while the page is open gets its preview and its "Compare" box.
  document.addEventListener("jobstatus", function (event) {
    var job = event.detail;
    if (!job.video) return;
    all('[data-compare-pick][data-job-id="' + job.id + '"]').forEach(function (box) {
      box.disabled = false;
      box.closest(".compare-pick").hidden = false;
    });
    all('[data-card] [data-role="thumb"][data-job-id="' + job.id + '"]').forEach(function (thumb) {
      var media = thumb.closest(".card-media");
      if (media.querySelector("[data-card-video]")) return;
      var video = document.createElement("video");
      video.className = "card-video";
      video.preload = "none";
      video.muted = true;
      video.loop = true;
      video.playsInline = true;
      video.setAttribute("aria-hidden", "true");
      video.setAttribute("data-card-video", "");
      video.src = job.video;
      thumb.after(video);
    });
  });

  // --- compare: one control plays, pauses and seeks every video -----------------------------------

  var board = document.querySelector("[data-compare]");
  if (!board) return;
  var videos = all("[data-compare-video]", board);
  var controls = document.querySelector("[data-compare-controls]");
  if (!videos.length || !controls) return;

  var playButton = controls.querySelector("[data-compare-play]");
  var seek = controls.querySelector("[data-compare-seek]");
  var clock = controls.querySelector("[data-compare-time]");
  var DRIFT = 0.25; // seconds a video may wander from the others before it is moved back
  var echo = new WeakMap(); // a seek this script made, so its "seeking" event is not taken for a person's

  // The one control replaces each video's own.
  videos.forEach(function (video) {
    video.controls = false;
  });
  controls.hidden = false;

  function length() {
    return videos.reduce(function (longest, video) {
      return isFinite(video.duration) && video.duration > longest ? video.duration : longest;
    }, 0);
  }

  // The longest video keeps the time: the others end before it and wait.
  function leader() {
    var longest = length();
    return (
      videos.filter(function (video) {
        return video.duration === longest;
      })[0] || videos[0]
    );
  }

  function format(seconds) {
    var whole = Math.max(0, Math.floor(seconds || 0));
    return Math.floor(whole / 60) + ":" + String(whole % 60).padStart(2, "0");
  }

  function playing() {
    return videos.some(function (video) {
      return !video.paused && !video.ended;
    });
  }

  function moveTo(video, time) {
    var target = isFinite(video.duration) ? Math.min(time, video.duration) : time;
    if (Math.abs(video.currentTime - target) < 0.01) return;
    echo.set(video, target);
    video.currentTime = target;
  }

  function seekAll(time, except) {
    videos.forEach(function (video) {
      if (video !== except) moveTo(video, time);
    });
    showTime(time);
  }

  function showTime(time) {
    var total = length();
    seek.max = total ? total.toFixed(2) : "0";
    if (!seek.matches(":active")) seek.value = String(time); // not while a person drags it
    clock.textContent = format(time) + " / " + format(total);
  }

  function showState() {
    var on = playing();
    playButton.textContent = on ? "❚❚ Pause all" : "▶ Play all";
    playButton.setAttribute("aria-label", on ? "Pause all" : "Play all");
  }

  function playAll() {
    var time = leader().currentTime;
    if (leader().ended || time >= length() - 0.05) {
      time = 0;
      seekAll(0);
    }
    videos.forEach(function (video) {
      if (!isFinite(video.duration) || time < video.duration) play(video);
    });
  }

  function pauseAll() {
    videos.forEach(function (video) {
      video.pause();
    });
    seekAll(leader().currentTime, leader());
  }

  playButton.addEventListener("click", function () {
    if (playing()) pauseAll();
    else playAll();
  });
  controls.querySelector("[data-compare-restart]").addEventListener("click", function () {
    seekAll(0);
  });
  seek.addEventListener("input", function () {
    seekAll(parseFloat(seek.value) || 0);
  });

  videos.forEach(function (video) {
    // Seeking one video (from a script, or a keyboard on it) moves the others to the same moment.
    video.addEventListener("seeking", function () {
      var expected = echo.get(video);
      echo.delete(video);
      if (expected !== undefined && Math.abs(video.currentTime - expected) < 0.05) return;
      seekAll(video.currentTime, video);
    });
    video.addEventListener("play", showState);
    video.addEventListener("pause", showState);
    video.addEventListener("ended", showState);
    video.addEventListener("loadedmetadata", function () {
      showTime(leader().currentTime);
    });
    // A click on any video plays or pauses them all.
    video.addEventListener("click", function () {
      if (playing()) pauseAll();
      else playAll();
    });
    video.addEventListener("timeupdate", function () {
      if (video !== leader()) return;
      showTime(video.currentTime);
      if (!playing()) return;
      videos.forEach(function (other) {
        if (other === video || other.ended || other.paused) return;
        if (Math.abs(other.currentTime - video.currentTime) > DRIFT) moveTo(other, video.currentTime);
      });
    });
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== " " || event.target.closest("input, button, select, textarea, a")) return;
    event.preventDefault();
    if (playing()) pauseAll();
    else playAll();
  });

  showTime(0);
  showState();
})();
