// A dangerous action's link ("Cancel…", "Delete files…", "Revoke…") opens its confirm step
// in place: <a data-reveal="step-id">, with [data-reveal-cancel] buttons in the step.
// Without JavaScript the link leads to a confirmation page that posts the same form.
(function () {
  "use strict";
  document.querySelectorAll("[data-reveal]").forEach(function (link) {
    var step = document.getElementById(link.dataset.reveal);
    if (!step) return;
    link.addEventListener("click", function (event) {
      event.preventDefault();
      step.hidden = false;
      link.hidden = true;
      var confirm = step.querySelector('button[type="submit"]');
      if (confirm) confirm.focus();
    });
    step.querySelectorAll("[data-reveal-cancel]").forEach(function (cancel) {
      cancel.addEventListener("click", function () {
        step.hidden = true;
        link.hidden = false;
        link.focus();
      });
    });
  });
})();
