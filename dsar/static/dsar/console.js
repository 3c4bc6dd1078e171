/* Staff console: while a request's connectors run, ask for its status every few seconds and show
   the outcome when it changes. The page reloads itself only if nothing has been typed into it;
   otherwise it says so and leaves the reload to the reader. Without JavaScript, the page's own
   "Refresh" link does the same. */
(function () {
  "use strict";
  var box = document.getElementById("progress");
  if (!box || !window.fetch) { return; }

  function typed() {
    var fields = document.querySelectorAll("textarea, input[type=text], input[type=number]");
    return Array.prototype.some.call(fields, function (field) { return field.value; });
  }

  function poll() {
    fetch(box.dataset.url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (body) {
        if (!body || body.status === box.dataset.status) { window.setTimeout(poll, 2000); return; }
        var now = "This request is now " + body.label.toLowerCase() + ".";
        if (typed()) { box.textContent = now + " Reload the page to see the result."; return; }
        box.textContent = now + " Loading the result…";
        window.location.reload();
      })
      .catch(function () { window.setTimeout(poll, 10000); });
  }

  window.setTimeout(poll, 2000);
}());
