// Live updates: every 2 s fetch the page's live part again (the server
// renders only it when asked with X-Console-Partial: 1) and swap it in.
// Forms live outside it, so typing is never disturbed.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) { return; }
  var url = live.getAttribute("data-live");
  async function refresh() {
    try {
      var r = await fetch(url, { headers: { "X-Console-Partial": "1" }, cache: "no-store" });
      if (r.ok) {
        live.innerHTML = await r.text();
        live.setAttribute("data-refreshed", String(Date.now()));
      }
    } catch (e) { /* the broker restarting: try again later */ }
    setTimeout(refresh, 2000);
  }
  setTimeout(refresh, 2000);
})();
