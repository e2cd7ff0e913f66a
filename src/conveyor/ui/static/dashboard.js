// Refused or failed actions: show the server's {"error": ...} message instead of failing silently.
document.addEventListener("htmx:responseError", function (event) {
  var notice = document.getElementById("notice");
  if (!notice) return;
  var text = event.detail.xhr.responseText;
  try { text = JSON.parse(text).error || text; } catch (e) { /* not JSON: show it as it is */ }
  notice.textContent = event.detail.xhr.status + ": " + text;
  notice.hidden = false;
});
document.addEventListener("htmx:sendError", function () {
  var notice = document.getElementById("notice");
  if (notice) { notice.textContent = "the dashboard server cannot be reached"; notice.hidden = false; }
});
