// The share panel (templates/jobs/_share.html): copy a link, open a revoke's confirm step in
// place, and choose "Until a date" when a date is picked. Without JavaScript the links are
// selectable text and "Revoke…" leads to a confirmation page.
(function () {
  "use strict";
  var panel = document.getElementById("share");
  if (!panel) return;

  panel.querySelectorAll("[data-share-copy]").forEach(function (button) {
    var label = button.textContent;
    button.addEventListener("click", function () {
      var field = document.getElementById(button.dataset.shareCopy);
      if (!field) return;
      var done = function () {
        button.textContent = "Copied";
        setTimeout(function () { button.textContent = label; }, 1500);
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(done, function () { select(field); done(); });
      } else {
        select(field);
        done();
      }
    });
  });

  // Plain http (a studio on a local network) has no clipboard API: copy the selection.
  function select(field) {
    field.focus();
    field.select();
    try { document.execCommand("copy"); } catch (e) { /* the link stays selected to copy by hand */ }
  }

  panel.querySelectorAll("[data-share-url]").forEach(function (field) {
    field.addEventListener("focus", function () { field.select(); });
  });

  panel.querySelectorAll("[data-share-reveal]").forEach(function (link) {
    var step = document.getElementById(link.dataset.shareReveal);
    if (!step) return;
    link.addEventListener("click", function (event) {
      event.preventDefault();
      step.hidden = false;
      link.hidden = true;
      var confirm = step.querySelector('button[type="submit"]');
      if (confirm) confirm.focus();
    });
    step.querySelectorAll("[data-share-reveal-cancel]").forEach(function (cancel) {
      cancel.addEventListener("click", function () {
        step.hidden = true;
        link.hidden = false;
        link.focus();
      });
    });
  });

  var day = panel.querySelector('input[type="date"][name="share-expires_on"]');
  var onDate = panel.querySelector('input[name="share-expires"][value="date"]');
  if (day && onDate) {
    var pick = function () { onDate.checked = true; };
    day.addEventListener("focus", pick);
    day.addEventListener("input", pick);
  }
})();
