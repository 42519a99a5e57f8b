// Warns before the idle sign-out on pages with a form; the server's timeout is what counts.
(function () {
  var note = document.getElementById("idle-warning"), stay = document.getElementById("idle-stay");
  if (!note || !document.querySelector("main form[method=post]")) return;
  var idle = Number(document.body.dataset.idleSeconds), warn = Number(document.body.dataset.idleWarningSeconds);
  var timer;
  function expire() { stay.remove(); note.textContent = note.dataset.expired; }
  function arm() { clearTimeout(timer); note.hidden = true; timer = setTimeout(function () { note.hidden = false; timer = setTimeout(expire, warn * 1000); }, Math.max(idle - warn, 1) * 1000); }
  stay.addEventListener("click", function () { fetch(stay.dataset.url, { credentials: "same-origin", redirect: "manual" }).then(function (r) { if (r.ok) arm(); else expire(); }); });
  arm();
})();
