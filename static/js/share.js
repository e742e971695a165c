// The share panel (templates/jobs/_share.html): copy a link and choose "Until a date" when a
// date is picked (reveal.js opens a revoke's confirm step in place). Without JavaScript the
// links are selectable text and "Revoke…" leads to a confirmation page.
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

  var day = panel.querySelector('input[type="date"][name="share-expires_on"]');
  var onDate = panel.querySelector('input[name="share-expires"][value="date"]');
  if (day && onDate) {
    var pick = function () { onDate.checked = true; };
    day.addEventListener("focus", pick);
    day.addEventListener("input", pick);
  }
})();
