// The spend page: the custom range's dates show only while "Custom range" is the chosen
// period. Without JavaScript they always show, and the server ignores them otherwise.
(function () {
  "use strict";
  var period = document.getElementById("id_period");
  var range = document.getElementById("custom-range");
  if (!period || !range) { return; }
  function sync() {
    range.hidden = period.value !== "custom";
  }
  period.addEventListener("change", function () {
    sync();
    if (!range.hidden) {
      var start = document.getElementById("id_start");
      if (start) { start.focus(); }
    }
  });
  sync();
})();
