// Live price preview, prompt counter, seed helpers, the Ctrl/⌘+Enter shortcut and the
// "PixelByte is busy" wait for the prompt form. The price rule comes from the server's
// catalog (json_script "price-catalog"): nothing here knows a price, and nothing here talks
// to the network (tray.js sends the form in place and fires "formanswered" when the page
// holds the server's answer).
(function () {
  "use strict";

  var form = document.getElementById("job-form");
  if (!form || !document.getElementById("price-catalog")) return;
  var MICRO_PER_DOLLAR = 1000000n;

  function readJson(id, fallback) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : fallback;
  }

  // Read again after each answer: a submit moves the budgets' spend.
  var catalog, budgets, warnAt, rule;
  function readData() {
    catalog = readJson("price-catalog", { factors: {} });
    budgets = readJson("budget-info", []);
    warnAt = BigInt(readJson("budget-warn-at", 80));
    rule = readJson("approval-rule", null);
  }
  readData();

  function selected(name) {
    var checked = form.querySelector('input[name="' + name + '"]:checked');
    return checked ? checked.value : null;
  }

  // How many videos the form asks for (1 to 4).
  function count() {
    var value = parseInt(selected("count") || "1", 10);
    return value >= 1 ? value : 1;
  }

  // Exact integer arithmetic (BigInt), rounded half up, as the server does.
  function priceOf(choices) {
    var num = BigInt(catalog.baseMicroCents);
    var den = 1n;
    var notes = [catalog.baseNote];
    for (var name in catalog.factors) {
      var factor = catalog.factors[name][choices[name]];
      if (!factor) return null;
      num *= BigInt(factor.n);
      den *= BigInt(factor.d);
      if (factor.note) notes.push(factor.note);
    }
    return { microCents: (2n * num + den) / (2n * den), notes: notes };
  }

  function group(digits) {
    return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }

  // 225000 → "$0.225": at least two decimals, more only when needed.
  function dollars(microCents) {
    var negative = microCents < 0n;
    var value = negative ? -microCents : microCents;
    var whole = (value / MICRO_PER_DOLLAR).toString();
    var fraction = (value % MICRO_PER_DOLLAR).toString().padStart(6, "0").replace(/0+$/, "");
    while (fraction.length < 2) fraction += "0";
    return (negative ? "-" : "") + "$" + group(whole) + "." + fraction;
  }

  function videos(n, one, many) {
    return n > 1 ? many.replace("N", String(n)) : one;
  }

  function setText(id, text) {
    var node = document.getElementById(id);
    if (node && node.textContent !== text) node.textContent = text;
  }

  function renderPrice() {
    var choices = {};
    for (var name in catalog.factors) choices[name] = selected(name);
    var price = priceOf(choices);
    var n = count();
    if (!price) {
      setText("price-dollars", "—");
      setText("price-micro", "choose every option");
      setText("price-breakdown", "");
      setText("price-each", "");
      setText("bar-total", "—");
      return;
    }
    var total = price.microCents * BigInt(n);
    setText("price-dollars", dollars(total));
    setText("price-micro", group(total.toString()) + " µ¢");
    setText("bar-total", dollars(total));
    setText("bar-note", videos(n, "for 1 video", "for N videos"));
    setText("price-eyebrow", videos(n, "This video will cost", "These N videos will cost"));
    if (n > 1) {
      setText("price-breakdown", n + " videos × " + dollars(price.microCents) + " = " + dollars(total));
      setText("price-each", "Each: " + price.notes.join(" × "));
    } else {
      setText("price-breakdown", price.notes.join(" × "));
      setText("price-each", "");
    }
    form.dispatchEvent(
      new CustomEvent("pricechange", { detail: { microCents: total, unit: price.microCents, count: n } })
    );
  }

  // Prompt length, counted in characters as the server counts them.
  var prompt = form.querySelector("textarea");
  var counter = document.getElementById("prompt-counter");
  function renderCounter() {
    if (!prompt || !counter) return;
    var limit = parseInt(counter.dataset.limit, 10);
    var length = Array.from(prompt.value).length;
    counter.textContent = group(String(length)) + " / " + group(String(limit));
    counter.classList.toggle("over", length > limit);
    counter.classList.toggle("near", length <= limit && length > limit * 0.9);
  }

  var seed = form.querySelector('input[name="seed"]');
  var randomSeed = document.getElementById("random-seed");
  var clearSeed = document.getElementById("clear-seed");
  if (seed && randomSeed) {
    randomSeed.addEventListener("click", function () {
      var max = parseInt(seed.max || "2147483647", 10);
      var value = crypto.getRandomValues(new Uint32Array(1))[0] % (max + 1);
      seed.value = String(value);
      seed.dispatchEvent(new Event("input", { bubbles: true }));
    });
  }
  if (seed && clearSeed) {
    clearSeed.addEventListener("click", function () {
      seed.value = "";
      seed.focus();
    });
  }

  // The server refuses a second post of the same form anyway; this spares the wait.
  var submit = document.getElementById("submit-button");
  var label = "Generate video";
  function ready() {
    if (!submit) return;
    submit.disabled = false;
    submit.textContent = label;
  }
  form.addEventListener("submit", function () {
    if (submit) {
      submit.disabled = true;
      submit.textContent = "Sending…";
    }
  });
  window.addEventListener("pageshow", function () {
    ready();
    renderPrice();
  });

  // What each budget that applies would have left after these videos, before the click.
  function renderBudgets(cost, n) {
    var budgetLines = document.getElementById("budget-lines");
    var refusal = document.getElementById("budget-refusal");
    if (!budgetLines || !budgets.length) return null;
    var blocking = null;
    var what = videos(n, "this video", "these N videos");
    budgetLines.replaceChildren();
    budgets.forEach(function (b) {
      var limit = BigInt(b.limitMicroCents);
      var after = BigInt(b.spentMicroCents) + cost;
      var left = limit - after;
      var line = document.createElement("p");
      line.className = "budget-line";
      line.dataset.kind = b.kind;
      if (left < 0n) {
        line.classList.add("over");
        line.textContent = capitalise(b.name) + ": over by " + dollars(-left) + " with " + what + " (limit " + dollars(limit) + ", starts again " + b.resetsOn + ").";
        if (!blocking) blocking = b;
      } else {
        var used = limit > 0n ? (after * 100n) / limit : 100n;
        if (used >= warnAt) line.classList.add("warn");
        line.textContent = capitalise(b.name) + ": " + dollars(left) + " left after " + what + " (" + used + "% used; starts again " + b.resetsOn + ").";
      }
      budgetLines.appendChild(line);
    });
    var asks = blocking && rule && rule.mayAsk;
    if (refusal) {
      refusal.hidden = !blocking || asks;
      refusal.textContent = blocking && !asks
        ? videos(n, "This video does not fit ", "These N videos do not fit ") + blocking.name +
          videos(n, ", so the studio would refuse it.", ", so the studio would refuse them.") +
          " Choose a cheaper option" + (n > 1 ? ", fewer videos" : "") + " or ask a manager."
        : "";
    }
    if (submit) submit.disabled = Boolean(blocking) && !asks;
    // On a phone the bar is what is in view: it says why the button is off.
    if (blocking && !asks) setText("bar-note", "over " + blocking.name + ": see the price");
    return asks ? blocking : null;
  }

  // A team may make a member's video wait for a manager: say so, and who, before the click.
  // Its threshold is per video; a budget is passed by all of them together.
  function renderApproval(unit, n, overBudget) {
    var approvalNote = document.getElementById("approval-note");
    var above = rule && rule.aboveMicroCents !== null && unit > BigInt(rule.aboveMicroCents);
    var why = "";
    if (above) {
      why = videos(n, "This video costs", "Each video costs") + " more than " + dollars(BigInt(rule.aboveMicroCents)) + videos(n, ", so a manager must approve it", ", so a manager must approve them");
    } else if (overBudget) {
      why = videos(n, "This video would pass ", "These N videos would pass ") + overBudget.name + videos(n, ", so a manager must approve it", ", so a manager must approve them");
    }
    if (approvalNote) {
      approvalNote.hidden = !why;
      approvalNote.textContent = why ? why + videos(n, " before it is made (", " before they are made (") + rule.approvers + "). Nothing is charged until then." : "";
    }
    label = why ? "Ask for approval" : videos(n, "Generate video", "Generate N videos");
    if (submit && submit.textContent !== "Sending…") submit.textContent = label;
  }

  function capitalise(text) {
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  form.addEventListener("pricechange", function (event) {
    var detail = event.detail;
    var overBudget = renderBudgets(detail.microCents, detail.count);
    renderApproval(detail.unit, detail.count, overBudget);
  });
  form.addEventListener("change", renderPrice);
  form.addEventListener("input", function (event) {
    if (event.target === prompt) renderCounter();
    else renderPrice();
  });

  // Ctrl+Enter (⌘+Enter on a Mac) sends the form from any of its fields.
  var mac = /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent);
  var hint = document.getElementById("shortcut-hint");
  if (hint && mac) hint.firstElementChild.textContent = "⌘";
  form.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey) || event.isComposing) return;
    event.preventDefault();
    if (submit && !submit.disabled) form.requestSubmit(submit);
  });

  // PixelByte asked the studio to wait: count the wait down, then let the person retry.
  function startWait() {
    var panel = document.getElementById("wait-panel");
    var retry = document.getElementById("retry-button");
    var text = document.getElementById("wait-text");
    if (!panel || !retry || !text) return;
    var ends = Date.now() + parseInt(panel.dataset.waitSeconds, 10) * 1000;
    function tick() {
      if (!panel.isConnected) return;
      var left = Math.ceil((ends - Date.now()) / 1000);
      if (left > 0) {
        retry.disabled = true;
        retry.textContent = "Try again in " + left + " s";
        text.textContent = text.textContent.replace(/\d+ s\b/, left + " s");
        setTimeout(tick, 250);
      } else {
        retry.disabled = false;
        retry.textContent = "Try again";
        text.textContent = panel.dataset.readyText;
      }
    }
    tick();
  }

  // The prompt has focus on load (or the first field with a problem, after a refusal).
  function focusFirst() {
    var invalid = form.querySelector(".field.has-error textarea, .field.has-error input:not([type=hidden])");
    var target = invalid || prompt;
    if (!target) return;
    target.focus({ preventScroll: !invalid });
    if (target === prompt) prompt.setSelectionRange(prompt.value.length, prompt.value.length);
  }

  // tray.js put the server's answer in the page: new key, new messages, new budgets.
  document.addEventListener("formanswered", function () {
    readData();
    ready();
    renderPrice();
    renderCounter();
    startWait();
    if (form.querySelector(".field.has-error")) focusFirst();
  });

  renderPrice();
  renderCounter();
  startWait();
  focusFirst();
})();
