// "Save to library" on the prompt form: the small save form takes the prompt form's current
// prompt and options when it is sent (without JavaScript it sends what the page showed).
(function () {
  "use strict";
  var save = document.getElementById("library-save-form");
  var job = document.getElementById("job-form");
  if (!save || !job) return;
  var NAMES = ["prompt", "quality", "duration", "aspect_ratio", "count", "seed"];

  save.addEventListener("submit", function () {
    var values = new FormData(job);
    NAMES.forEach(function (name) {
      var hidden = save.querySelector('input[type=hidden][name="save-' + name + '"]');
      if (hidden) hidden.value = values.has(name) ? values.get(name) : "";
    });
  });

  // Opening the control puts the cursor in its title box.
  var details = document.getElementById("library-save");
  if (details) {
    details.addEventListener("toggle", function () {
      if (details.open) document.getElementById("library-title").focus();
    });
  }
})();
