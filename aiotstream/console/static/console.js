// aiotstream console: remember the operator's name, put it on every action, refresh the live part of the page.
(function () {
  "use strict";
  var KEY = "aiotstream.operator";
  var op = document.getElementById("operator");
  if (op) {
    try { op.value = localStorage.getItem(KEY) || ""; } catch (e) { /* storage off: type it each time */ }
    op.addEventListener("input", function () { try { localStorage.setItem(KEY, op.value); } catch (e) {} });
  }
  // every action form carries the operator's name (the flow records it as "by")
  document.addEventListener("submit", function (ev) {
    var by = ev.target.querySelector("input[name=by]");
    if (by && op) { by.value = op.value; }
  }, true);
  var live = document.getElementById("live");
  if (!live) { return; }
  if (!live.hasAttribute("data-refresh-ms")) { return; }  // (the sign-in page: nothing live)
  var every = parseInt(live.getAttribute("data-refresh-ms"), 10) || 2000;
  function busy() {  // never replace what the operator is typing or choosing
    var a = document.activeElement;
    if (a && live.contains(a) && a.tagName !== "BUTTON" && a.tagName !== "A") { return true; }
    var inputs = live.querySelectorAll("input[name=note], input[name=fault_type]");
    for (var i = 0; i < inputs.length; i++) { if (inputs[i].value) { return true; } }
    var open = live.querySelectorAll("details[open]");
    return open.length > 0;
  }
  function refresh() {
    if (document.hidden || busy()) { return; }
    fetch(location.href, { headers: { "X-Fragment": "1" }, cache: "no-store" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null && !busy()) { live.innerHTML = html; } })
      .catch(function () { /* the next tick tries again */ });
  }
  setInterval(refresh, every);
})();
