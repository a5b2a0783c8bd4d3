// Outpost console: the machine's serial console in an xterm.js terminal,
// over the API's websocket (GET /v1/machines/{id}/console), which the
// session opens. A viewer watches; an operator may take the keyboard.
(function () {
  "use strict";

  document.addEventListener("DOMContentLoaded", function () {
    var el = document.getElementById("terminal");
    if (!el || !window.Terminal) return;
    var status = document.getElementById("console-status");
    var take = document.getElementById("take-keyboard");
    var term = new window.Terminal({ convertEol: false, scrollback: 5000, fontFamily: "ui-monospace, monospace" });
    var fit = new window.FitAddon.FitAddon();
    term.loadAddon(fit);
    term.open(el);
    fit.fit();
    window.addEventListener("resize", function () { fit.fit(); });
    // What the terminal holds, scrollback included, one line per line
    // the machine printed (rows it wrapped are joined): the hook the
    // browser tests read it through.
    el.outpostText = function () {
      var b = term.buffer.active, out = [];
      for (var i = 0; i < b.length; i++) {
        var line = b.getLine(i);
        if (!line) continue;
        var s = line.translateToString(true);
        if (line.isWrapped && out.length > 0) out[out.length - 1] += s; else out.push(s);
      }
      return out.join("\n");
    };

    var ws = null, writing = false, notice = "";
    function say(text) { status.textContent = text; }

    function connect() {
      var proto = location.protocol === "https:" ? "wss:" : "ws:";
      var url = proto + "//" + location.host + "/v1/machines/" + encodeURIComponent(el.getAttribute("data-machine")) +
        "/console" + (writing ? "?write=true" : "");
      ws = new WebSocket(url);
      ws.binaryType = "arraybuffer";
      ws.onmessage = function (m) {
        if (typeof m.data !== "string") { term.write(new Uint8Array(m.data)); return; }
        var msg = JSON.parse(m.data);
        if (msg.type === "hello") {
          term.reset();
          say((notice ? notice + " " : "") + "Connected through node " + msg.node + ". Shown: " + msg.scrollback + "." +
            (writing ? " You have the keyboard." : " Watching."));
          notice = "";
          if (take) take.hidden = writing;
        } else if (msg.type === "error") {
          say("Console: " + msg.message);
        } else if (msg.type === "status" && msg.writer && !writing) {
          say("Watching; someone else has the keyboard.");
        }
      };
      ws.onclose = function (e) {
        if (e.code === 1012) {
          // The leader changed: the new leader opens a new session.
          notice = "The leader changed: the scrollback the previous leader held is lost.";
          say(notice + " Reconnecting…");
          setTimeout(connect, 1000);
          return;
        }
        say("Console closed" + (e.reason ? ": " + e.reason : "") + ". Reconnecting…");
        setTimeout(connect, 3000);
      };
    }
    term.onData(function (d) {
      if (writing && ws && ws.readyState === WebSocket.OPEN) ws.send(d);
    });
    if (take) {
      take.hidden = false;
      take.addEventListener("click", function () {
        writing = true;
        ws.onclose = null;
        ws.close();
        connect();
        term.focus();
      });
    }
    connect();
  });
})();
