// "Copy prompt" and friends on the job page.
(function () {
  "use strict";
  document.querySelectorAll("[data-copy-target]").forEach(function (button) {
    button.addEventListener("click", function () {
      var source = document.getElementById(button.dataset.copyTarget);
      var text = source ? source.textContent : "";
      var done = function () {
        var label = button.textContent;
        button.textContent = "Copied";
        setTimeout(function () { button.textContent = label; }, 1500);
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, function () { fallback(text); done(); });
      } else {
        fallback(text);
        done();
      }
    });
  });

  function fallback(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } catch (e) { /* nothing more to try */ }
    area.remove();
  }

  // A pending job's Cancel button goes away once the job has moved on.
  document.addEventListener("jobstatus", function (event) {
    var job = event.detail;
    document.querySelectorAll('[data-role="cancel"][data-job-id="' + job.id + '"]').forEach(function (form) {
      if (job.status !== "pending") form.remove();
    });
  });
})();
