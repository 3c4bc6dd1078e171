// The request's page reloads itself once the request moves on, so a person waiting sees the
// outcome. It asks for the page every ten seconds and compares the state the page carries
// (#status-body's data-status). Without this script, the page's "Check again now" link does it.
(function () {
  var body = document.getElementById("status-body");
  if (!body || !window.fetch || !window.DOMParser) { return; }
  var shown = body.dataset.status;
  setInterval(function () {
    fetch(location.pathname, {credentials: "same-origin", cache: "no-store"}).then(function (answer) {
      return answer.ok ? answer.text() : "";
    }).then(function (html) {
      var next = new DOMParser().parseFromString(html, "text/html").getElementById("status-body");
      if (next && next.dataset.status !== shown) { location.reload(); }
    }).catch(function () {});
  }, 10000);
})();
