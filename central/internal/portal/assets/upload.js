// Outpost portal: an artifact's upload with its progress. The file is
// POSTed as it is to central's API (POST /v1/artifacts?name=), which the
// session may open with its CSRF token; central hashes the bytes as they
// arrive, so the browser reads nothing whole.
(function () {
  "use strict";

  function csrf() {
    try { return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRF-Token"]; } catch (e) { return ""; }
  }

  document.addEventListener("submit", function (e) {
    var form = e.target;
    var to = form.getAttribute("data-upload");
    if (!to) return;
    e.preventDefault();
    var file = form.querySelector("[data-test=upload-file]").files[0];
    var name = form.querySelector("[data-test=upload-name]").value;
    var bar = form.querySelector("[data-test=upload-progress]");
    var status = form.querySelector("[data-test=upload-status]");
    var button = form.querySelector("[data-test=upload-submit]");
    if (!file) return;
    var xhr = new XMLHttpRequest();
    xhr.open("POST", to + "?name=" + encodeURIComponent(name));
    xhr.setRequestHeader("X-CSRF-Token", csrf());
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    bar.hidden = false;
    bar.value = 0;
    button.disabled = true;
    status.textContent = "uploading " + file.name + "…";
    xhr.upload.addEventListener("progress", function (p) {
      if (p.lengthComputable) bar.value = Math.floor(100 * p.loaded / p.total);
    });
    xhr.addEventListener("loadend", function () {
      button.disabled = false;
      var body = {};
      try { body = JSON.parse(xhr.responseText); } catch (err) { body = {}; }
      if (xhr.status === 201) {
        bar.value = 100;
        status.textContent = "stored as sha256:" + body.sha256;
        status.setAttribute("data-sha256", body.sha256);
      } else {
        status.textContent = "not stored: " + ((body.error && body.error.message) || xhr.statusText || "the connection failed");
      }
    });
    xhr.send(file);
  });
})();
