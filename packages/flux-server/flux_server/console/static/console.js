// The Flux console's only script: pages work without it; it adds live updates to an
// execution's page, "select all" to the executions list, and shows a schedule form's fields
// for the kind chosen. No inline script anywhere (the pages' CSP forbids it).
"use strict";

(function () {
  // An execution's page: its live part is replaced by each "update" frame of its stream.
  // The stream is closed while the tab is hidden (the server then does no work for it) and
  // when the execution has finished ("done").
  const live = document.querySelector("[data-live]");
  if (live && "EventSource" in window) {
    let source = null;
    let finished = false;
    const close = function () {
      if (source) {
        source.close();
        source = null;
      }
    };
    const open = function () {
      if (source || finished) {
        return;
      }
      source = new EventSource(live.dataset.live);
      source.addEventListener("update", function (event) {
        live.innerHTML = event.data;
      });
      source.addEventListener("done", function () {
        finished = true;
        close();
      });
    };
    document.addEventListener("visibilitychange", function () {
      if (document.hidden) {
        close();
      } else {
        open();
      }
    });
    // Leaving the page closes the stream first (else the browser reports it cut).
    window.addEventListener("pagehide", close);
    if (!document.hidden) {
      open();
    }
  }

  // The executions list: one box selects every row's box.
  const all = document.querySelector("[data-select-all]");
  if (all) {
    all.addEventListener("change", function () {
      document.querySelectorAll('input[name="id"][form="bulk"]').forEach(function (box) {
        box.checked = all.checked;
      });
    });
  }

  // A schedule form: only the fields of the kind chosen are shown.
  const kinds = document.querySelector("[data-kinds]");
  if (kinds) {
    const show = function () {
      const chosen = kinds.querySelector('input[name="kind"]:checked');
      document.querySelectorAll("[data-kind]").forEach(function (field) {
        field.hidden = chosen !== null && field.dataset.kind !== chosen.value;
      });
    };
    kinds.addEventListener("change", show);
    show();
  }
})();
