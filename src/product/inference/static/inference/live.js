// Live status: each element with data-live-source listens to a Server-Sent Events stream and,
// when a status event arrives, re-renders its target from the server (no page reload). A page
// of one request redraws when its status changes or when a running request reports progress
// (an event with "done", the inputs finished so far).
(function () {
  "use strict";

  // A stream the server refused (429 over a stream limit, 503 while the database is away) is
  // not retried by EventSource itself: open a new one after this long.
  const REOPEN_AFTER_MS = 30000;

  // data-live-target names one element, or several ("#a, #b"): each is redrawn from the element
  // with its id in the refreshed HTML (a single target takes the whole of it).
  function redraw(targets, html) {
    if (targets.length === 1) { targets[0].innerHTML = html; return; }
    const fresh = document.createElement("template");
    fresh.innerHTML = html;
    targets.forEach((target) => {
      const part = fresh.content.getElementById(target.id);
      if (part) target.innerHTML = part.innerHTML;
    });
  }

  function connect(section) {
    const targets = Array.from(document.querySelectorAll(section.dataset.liveTarget));
    let shownStatus = section.dataset.liveStatus || null;
    let refreshing = null;
    let scheduled = null;

    // Bursts of events (a busy list) cost one re-render, not one each; data-live-every (ms)
    // spaces re-renders further apart for a page that reads more (the operations page).
    const every = Number(section.dataset.liveEvery || 150);
    function refresh() {
      if (!scheduled) scheduled = setTimeout(() => { scheduled = null; render(); }, every);
    }

    function render() {
      if (refreshing) return refreshing;
      refreshing = fetch(section.dataset.liveRefresh, { credentials: "same-origin" })
        .then((response) => (response.ok ? response.text() : Promise.reject(response.status)))
        .then((html) => {
          redraw(targets, html);
          const head = targets[0].querySelector("[data-status]");
          if (head) shownStatus = head.dataset.status;
        })
        .catch(() => {})
        .finally(() => { refreshing = null; });
      return refreshing;
    }

    function listen() {
      const source = new EventSource(section.dataset.liveSource);
      source.addEventListener("status", (event) => {
        const data = JSON.parse(event.data);
        if (shownStatus === null || data.status !== shownStatus || data.done !== undefined) refresh();
      });
      // The server lost and regained its database listener: re-read, something may have changed.
      source.addEventListener("resync", refresh);
      // EventSource reconnects by itself (a stream ends at its maximum age, or drops); re-read on
      // every open after the first in case a change came while no stream was open.
      source.addEventListener("open", () => { if (section.dataset.liveOpened) refresh(); section.dataset.liveOpened = "1"; });
      source.addEventListener("error", () => {
        if (source.readyState === EventSource.CLOSED) setTimeout(listen, REOPEN_AFTER_MS);
      });
    }

    listen();
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-live-source]").forEach(connect);
  });
})();
