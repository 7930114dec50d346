// The review page's filter: rows whose name holds the typed text stay, the rest are hidden,
// and the project groups holding a match open. Without JavaScript the box stays hidden and every
// row is on the page all the same.
(function () {
  "use strict";
  var bar = document.getElementById("filter-bar");
  var box = document.getElementById("filter");
  var count = document.getElementById("filter-count");
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr[data-name]"));
  var groups = Array.prototype.slice.call(document.querySelectorAll("details.project"));
  var names = rows.map(function (row) { return row.getAttribute("data-name").toLowerCase(); });
  bar.hidden = false;
  box.addEventListener("input", function () {
    var query = box.value.trim().toLowerCase();
    var shown = 0;
    rows.forEach(function (row, index) {
      var match = names[index].indexOf(query) !== -1;
      row.hidden = !match;
      if (match) { shown += 1; }
    });
    groups.forEach(function (group) {
      var match = group.querySelector("tr[data-name]:not([hidden])") !== null;
      group.hidden = !match;
      group.open = query !== "" && match;
    });
    count.textContent = query === "" ? "" : shown + " of " + rows.length + " rows match";
  });
})();
