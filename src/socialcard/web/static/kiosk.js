// Kiosk mode: the only script of the pages. It keeps the idle time of a citizen's session,
// ends the session when the time is up, and replaces history entries instead of adding them,
// so the back button never returns to a citizen's view. It stores nothing in the browser.
(function () {
  "use strict";

  function wipeStorage() {
    try { window.localStorage.clear(); } catch (e) { /* storage disabled */ }
    try { window.sessionStorage.clear(); } catch (e) { /* storage disabled */ }
  }

  // A page shown again from the back-forward cache is fetched anew (the server decides).
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) { window.location.reload(); }
  });

  // Links on kiosk pages (the language switcher) replace the current entry.
  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("a[href]") : null;
    if (!link || link.origin !== window.location.origin || event.defaultPrevented) { return; }
    var here = window.location;
    if (link.hash && link.pathname === here.pathname && link.search === here.search) { return; }
    event.preventDefault();
    window.location.replace(link.href);
  });

  // A start page that answered a form (a wrong PIN) becomes a plain entry of the start page,
  // so going back to it later never asks to send the form again.
  var start = document.getElementById("kiosk-start");
  if (start && start.getAttribute("data-replace")) {
    window.history.replaceState(null, "", start.getAttribute("data-replace"));
  }

  var box = document.getElementById("kiosk-session");
  if (!box) { wipeStorage(); return; }
  var idleMs = 1000 * parseInt(box.getAttribute("data-idle-seconds"), 10);
  var endForm = document.getElementById("kiosk-end");
  var ended = false;
  var timer = null;
  var lastTouch = Date.now();

  function formBody(reason) {
    var data = new URLSearchParams(new FormData(endForm));
    data.set("reason", reason);
    return data;
  }

  function end(reason) {
    if (ended) { return; }
    ended = true;
    wipeStorage();
    var target = reason === "timeout" ? box.getAttribute("data-ended") : "/kiosk?ended=logout";
    var leave = function () { window.location.replace(target); };
    fetch(box.getAttribute("data-end"), {
      method: "POST", body: formBody(reason), credentials: "same-origin",
      redirect: "manual", keepalive: true, cache: "no-store"
    }).then(leave, leave);
  }

  function restart() {
    if (ended) { return; }
    if (timer !== null) { window.clearTimeout(timer); }
    timer = window.setTimeout(function () { end("timeout"); }, idleMs);
    // The server's idle clock restarts too, at most every quarter of the timeout.
    var now = Date.now();
    if (now - lastTouch > idleMs / 4) {
      lastTouch = now;
      fetch(box.getAttribute("data-touch"), {
        method: "POST", body: formBody("touch"), credentials: "same-origin",
        redirect: "manual", cache: "no-store"
      }).then(function (answer) {
        if (answer.status === 404) { end("timeout"); }
      }, function () { /* offline: the timer still ends the session */ });
    }
  }

  endForm.addEventListener("submit", function (event) {
    event.preventDefault();
    end("logout");
  });
  ["keydown", "pointerdown", "touchstart", "wheel", "scroll"].forEach(function (name) {
    window.addEventListener(name, restart, { passive: true });
  });
  restart();
})();
