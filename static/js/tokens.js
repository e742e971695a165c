// The tokens page: copy a new token (shown once) and pick "On a date" when a date is chosen.
(function () {
  "use strict";
  document.querySelectorAll("[data-copy-target]").forEach(function (button) {
    var label = button.textContent;
    button.addEventListener("click", function () {
      var source = document.getElementById(button.dataset.copyTarget);
      var text = source ? source.textContent.trim() : "";
      var done = function () {
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

  var day = document.getElementById("id_expires_on");
  var onDate = document.querySelector('input[name="expires"][value="date"]');
  if (day && onDate) {
    var pick = function () { onDate.checked = true; };
    day.addEventListener("focus", pick);
    day.addEventListener("input", pick);
  }
})();
