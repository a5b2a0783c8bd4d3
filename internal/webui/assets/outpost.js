// Outpost's consoles (the appliance's and central's portal): live updates
// (Server-Sent Events) and the machines table's columns. The pages work
// without it; it only keeps them current. The body says which stream to
// follow (data-stream, data-stream-event) and from where (data-last).
(function () {
  "use strict";

  // A live region is not swapped while the user edits a field inside it.
  function editing(region) {
    var a = document.activeElement;
    if (a && region.contains(a) && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName)) return true;
    return region.querySelector("[data-dirty]") !== null;
  }

  document.addEventListener("input", function (e) {
    var f = e.target.form;
    if (f) f.setAttribute("data-dirty", "");
  });

  document.addEventListener("htmx:beforeRequest", function (e) {
    var el = e.detail.elt;
    if (el.hasAttribute("data-live-region") && editing(el)) {
      e.preventDefault();
      pending = true;
    }
  });

  document.addEventListener("htmx:afterSettle", applyColumns);

  var pending = false;
  var timer = null;

  // refresh asks every live region to reload, at most once a second.
  function refresh() {
    if (timer) { pending = true; return; }
    if (window.htmx) window.htmx.trigger(document.body, "outpost:refresh");
    timer = setTimeout(function () {
      timer = null;
      if (pending) { pending = false; refresh(); }
    }, 1000);
  }

  var src = null;

  // live opens the page's stream. A page the browser leaves (or keeps in
  // its back-forward cache) closes it: browsers allow a host six
  // connections, and streams left open would take them all. A page
  // shown again from that cache reopens it where it stopped, and
  // reloads its live regions.
  function live() {
    if (!document.body.hasAttribute("data-live") || !window.EventSource || src) return;
    var banner = document.getElementById("disconnected");
    // The stream starts at the newest event: the page shows what came
    // before; the browser resumes from the last id it saw (Last-Event-ID).
    var body = document.body;
    src = new EventSource((body.getAttribute("data-stream") || "/v1/events/stream") + "?since=" +
      (body.getAttribute("data-last") || "0"));
    var wasDown = false;
    src.addEventListener("open", function () {
      if (banner) banner.hidden = true;
      document.body.removeAttribute("data-disconnected");
      if (wasDown) refresh();
      wasDown = false;
    });
    src.addEventListener("error", function () {
      if (banner) banner.hidden = false;
      document.body.setAttribute("data-disconnected", "");
      wasDown = true;
    });
    src.addEventListener(body.getAttribute("data-stream-event") || "event", function (e) {
      document.body.setAttribute("data-last", e.lastEventId);
      refresh();
    });
  }

  window.addEventListener("pagehide", function () {
    if (src) src.close();
    src = null;
  });
  window.addEventListener("pageshow", function (e) {
    if (e.persisted) {
      live();
      refresh();
    }
  });

  // Columns: which the machines table shows is kept in localStorage
  // (a table whose columns the server chooses has no data-col cells).
  var colKey = "outpost.machines.hidden";
  function hiddenCols() {
    try { return JSON.parse(localStorage.getItem(colKey) || "[]"); } catch (e) { return []; }
  }
  function applyColumns() {
    var hidden = hiddenCols();
    document.querySelectorAll("[data-col-toggle]").forEach(function (box) {
      box.checked = hidden.indexOf(box.getAttribute("data-col-toggle")) < 0;
    });
    document.querySelectorAll("[data-col]").forEach(function (cell) {
      cell.hidden = hidden.indexOf(cell.getAttribute("data-col")) >= 0;
    });
  }
  document.addEventListener("change", function (e) {
    var key = e.target.getAttribute && e.target.getAttribute("data-col-toggle");
    if (!key) return;
    var hidden = hiddenCols().filter(function (k) { return k !== key; });
    if (!e.target.checked) hidden.push(key);
    localStorage.setItem(colKey, JSON.stringify(hidden));
    applyColumns();
  });

  document.addEventListener("DOMContentLoaded", function () {
    applyColumns();
    live();
  });
})();
