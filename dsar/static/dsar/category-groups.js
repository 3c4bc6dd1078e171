// The request form's "All of …" boxes tick and untick their group's categories on the page, and a
// group's box shows whether all of its categories are ticked (partly: indeterminate). Without this
// script the server adds a ticked group's categories when the form is sent.
document.querySelectorAll('input[name="groups"]').forEach(function (groupBox) {
  var fieldset = groupBox.closest("fieldset");
  var members = fieldset.querySelectorAll('input[name="categories"]');
  function reflect() {
    var ticked = Array.prototype.filter.call(members, function (box) { return box.checked; }).length;
    groupBox.checked = ticked === members.length;
    groupBox.indeterminate = ticked > 0 && ticked < members.length;
  }
  groupBox.addEventListener("change", function () {
    members.forEach(function (box) { box.checked = groupBox.checked; });
    groupBox.indeterminate = false;
  });
  members.forEach(function (box) { box.addEventListener("change", reflect); });
  if (groupBox.checked) {
    members.forEach(function (box) { box.checked = true; });
  } else {
    reflect();
  }
});
