// The request form's hidden time_zone field gets the browser's time zone, so that the pages and
// emails the person reads give times in it. Without this script the field stays empty: UTC.
document.querySelectorAll('input[name="time_zone"]').forEach(function (field) {
  try { field.value = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (error) { field.value = ""; }
});
