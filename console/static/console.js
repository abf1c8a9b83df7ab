// Refreshes the jobs table and the inbox from the server-rendered partials
// (html/template escaped them). The inbox is only swapped when its requests
// changed and no one is typing an answer in it.
(function () {
  "use strict";
  var jobs = document.getElementById("jobs");
  var inbox = document.getElementById("inbox");
  if (!jobs || !inbox) return;
  var every = parseInt(jobs.dataset.refreshMs, 10) || 2000;
  var dirty = false;
  inbox.addEventListener("input", function () { dirty = true; });
  inbox.addEventListener("submit", function () { dirty = false; });

  function get(path) {
    return fetch(path, { credentials: "same-origin", headers: { Accept: "text/html" } }).then(function (r) {
      if (r.status === 401) { window.location.reload(); throw new Error("logged out"); }
      if (!r.ok) throw new Error(path + ": " + r.status);
      return r.text();
    });
  }
  function parse(html) {
    var t = document.createElement("template");
    t.innerHTML = html;
    return t.content.firstElementChild;
  }
  function tick() {
    get("/partials/jobs").then(function (html) { jobs.innerHTML = html; }).catch(function () {});
    get("/partials/inbox").then(function (html) {
      var fresh = parse(html), cur = inbox.firstElementChild;
      if (!fresh || (cur && cur.dataset.sig === fresh.dataset.sig)) return;
      if (dirty || inbox.contains(document.activeElement)) {
        if (cur && !cur.querySelector(".stale")) {
          var p = document.createElement("p");
          p.className = "stale";
          p.textContent = "New or answered requests: reload the page to see them.";
          cur.prepend(p);
        }
        return;
      }
      inbox.replaceChildren(fresh);
    }).catch(function () {});
  }
  window.setInterval(tick, every);
})();
