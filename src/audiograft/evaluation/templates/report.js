// Sorting is client-side so the page needs no server; rows open worst-WER first.
(function () {
  "use strict";
  var table = document.getElementById("utterances");
  var body = table.tBodies[0];
  var headers = Array.prototype.slice.call(table.querySelectorAll("th[data-sort]"));
  function key(row, index, numeric) {
    var raw = row.cells[index].getAttribute("data-value");
    if (!numeric) return raw || "";
    return raw === null || raw === "" ? null : parseFloat(raw);
  }
  function sortBy(header, descending) {
    var index = header.cellIndex, numeric = header.getAttribute("data-sort") === "number";
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a, index, numeric), y = key(b, index, numeric);
      if (x === null || y === null) return (x === null) - (y === null);  // blanks last either way
      var order = numeric ? x - y : x.localeCompare(y, undefined, {numeric: true});
      return descending ? -order : order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", descending ? "descending" : "ascending");
  }
  headers.forEach(function (header) {
    header.addEventListener("click", function () {
      sortBy(header, header.getAttribute("aria-sort") !== "descending");
    });
  });
  var initial = table.querySelector("th[data-default]");
  if (initial) sortBy(initial, true);
  document.documentElement.setAttribute("data-report-ready", "true");
})();
