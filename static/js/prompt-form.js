// Live price preview, prompt counter and seed helpers for the prompt form.
// The price rule comes from the server's catalog (json_script "price-catalog"):
// nothing here knows a price, and nothing here talks to the network.
(function () {
  "use strict";

  var catalogNode = document.getElementById("price-catalog");
  var form = document.getElementById("job-form");
  if (!catalogNode || !form) return;
  var catalog = JSON.parse(catalogNode.textContent);
  var MICRO_PER_DOLLAR = 1000000n;

  function selected(name) {
    var checked = form.querySelector('input[name="' + name + '"]:checked');
    return checked ? checked.value : null;
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

  var dollarsNode = document.getElementById("price-dollars");
  var microNode = document.getElementById("price-micro");
  var breakdownNode = document.getElementById("price-breakdown");

  function renderPrice() {
    var choices = {};
    for (var name in catalog.factors) choices[name] = selected(name);
    var price = priceOf(choices);
    if (!price) {
      dollarsNode.textContent = "—";
      microNode.textContent = "choose every option";
      breakdownNode.textContent = "";
      return;
    }
    dollarsNode.textContent = dollars(price.microCents);
    microNode.textContent = group(price.microCents.toString()) + " µ¢";
    breakdownNode.textContent = price.notes.join(" × ");
    form.dispatchEvent(new CustomEvent("pricechange", { detail: { microCents: price.microCents } }));
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
  form.addEventListener("submit", function () {
    if (submit) {
      submit.disabled = true;
      submit.textContent = "Sending…";
    }
  });
  window.addEventListener("pageshow", function () {
    if (submit) {
      submit.disabled = false;
      submit.textContent = "Generate video";
    }
    renderPrice();
  });

  // What each budget that applies would have left after this video, before the click.
  var budgetNode = document.getElementById("budget-info");
  var budgets = budgetNode ? JSON.parse(budgetNode.textContent) : [];
  var warnNode = document.getElementById("budget-warn-at");
  var warnAt = BigInt(warnNode ? JSON.parse(warnNode.textContent) : 80);
  var budgetLines = document.getElementById("budget-lines");
  var refusal = document.getElementById("budget-refusal");

  function renderBudgets(cost) {
    if (!budgetLines || !budgets.length) return;
    var blocking = null;
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
        line.textContent = capitalise(b.name) + ": over by " + dollars(-left) + " with this video (limit " + dollars(limit) + ", starts again " + b.resetsOn + ").";
        if (!blocking) blocking = b;
      } else {
        var used = limit > 0n ? (after * 100n) / limit : 100n;
        if (used >= warnAt) line.classList.add("warn");
        line.textContent = capitalise(b.name) + ": " + dollars(left) + " left after this video (" + used + "% used; starts again " + b.resetsOn + ").";
      }
      budgetLines.appendChild(line);
    });
    var asks = blocking && rule && rule.mayAsk;
    if (refusal) {
      refusal.hidden = !blocking || asks;
      refusal.textContent = blocking && !asks ? "This video does not fit " + blocking.name + ", so the studio would refuse it. Choose a cheaper option or ask a manager." : "";
    }
    if (submit) submit.disabled = Boolean(blocking) && !asks;
    return asks ? blocking : null;
  }

  // A team may make a member's video wait for a manager: say so, and who, before the click.
  var ruleNode = document.getElementById("approval-rule");
  var rule = ruleNode ? JSON.parse(ruleNode.textContent) : null;
  var approvalNote = document.getElementById("approval-note");

  function renderApproval(cost, overBudget) {
    var above = rule && rule.aboveMicroCents !== null && cost > BigInt(rule.aboveMicroCents);
    var why = above
      ? "This video costs more than " + dollars(BigInt(rule.aboveMicroCents)) + ", so a manager must approve it"
      : overBudget ? "This video would pass " + overBudget.name + ", so a manager must approve it" : "";
    if (approvalNote) {
      approvalNote.hidden = !why;
      approvalNote.textContent = why ? why + " before it is made (" + rule.approvers + "). Nothing is charged until then." : "";
    }
    if (submit) submit.textContent = why ? "Ask for approval" : "Generate video";
  }

  function capitalise(text) {
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  form.addEventListener("pricechange", function (event) {
    var overBudget = renderBudgets(event.detail.microCents);
    renderApproval(event.detail.microCents, overBudget);
  });
  form.addEventListener("change", renderPrice);
  form.addEventListener("input", function (event) {
    if (event.target === prompt) renderCounter();
    else renderPrice();
  });
  renderPrice();
  renderCounter();
})();
