/*
 * Progressive enhancement for the signup form: preselect the visitor's own time zone.
 *
 * Acts only on a fresh form (the server marks it with data-guess-timezone; a re-rendered form
 * with errors keeps what the person chose) and only while the select still shows the server's
 * initial "UTC". Without JavaScript the form works as is, with UTC.
 */
(function () {
  "use strict";

  function browserZone() {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (error) {
      return "";
    }
  }

  function hasOption(select, value) {
    for (var i = 0; i < select.options.length; i += 1) {
      if (select.options[i].value === value) {
        return true;
      }
    }
    return false;
  }

  function guess() {
    var select = document.getElementById("id_timezone");
    if (!select || !select.closest("[data-guess-timezone]")) {
      return;
    }
    // Changed already (by the person, or restored by the browser on "back"): leave it.
    if (select.value !== "UTC") {
      return;
    }
    var zone = browserZone();
    if (zone && zone !== "UTC" && hasOption(select, zone)) {
      select.value = zone;
    }
  }

  guess();
})();
