// Passerelle message browser: live counters and the replay button. No framework, no build.
// Text only ever goes in through textContent: the server already escaped the page.
"use strict";

(function () {
  const REFRESH_MS = 3000;

  async function refreshCounters() {
    try {
      const res = await fetch("/ui/counters", { headers: { Accept: "application/json" } });
      if (!res.ok) return;
      const body = await res.json();
      document.querySelectorAll("#counters .n").forEach((el) => {
        el.textContent = String(body.counts[el.dataset.status] || 0);
      });
      document.body.dataset.countersRefreshed = String(Date.now());
    } catch (_err) {
      // the gateway is restarting: try again at the next tick
    }
  }

  // Every parked copy goes back (one per document and destination): say how many and where.
  function replayedText(body) {
    const where = body.destinations.join(", ");
    let text =
      body.copies === 1 ? "replayed to " + where : `replayed ${body.copies} copies to ${where}`;
    const left = body.not_replayed || [];
    if (left.length) text += `; ${left.length} still parked: ${left.join("; ")}`;
    return text;
  }

  async function replay(button) {
    const out = document.getElementById("replay-result");
    button.disabled = true;
    out.textContent = "replaying…";
    try {
      const res = await fetch("/messages/" + encodeURIComponent(button.dataset.id) + "/replay", {
        method: "POST",
      });
      const body = await res.json();
      out.textContent = res.ok
        ? replayedText(body)
        : "not replayed: " + (body.reason || body.detail || res.status);
      // copies left in parking can be tried again once their cause is fixed
      if (!res.ok || (body.not_replayed || []).length) button.disabled = false;
    } catch (_err) {
      out.textContent = "not replayed: the gateway did not answer";
      button.disabled = false;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const button = document.getElementById("replay");
    if (button) button.addEventListener("click", () => replay(button));
    document.querySelectorAll("#messages tbody tr").forEach((row) => {
      row.addEventListener("click", (ev) => {
        if (ev.target.tagName !== "A") row.querySelector("a").click();
      });
    });
    refreshCounters();
    setInterval(refreshCounters, REFRESH_MS);
  });
})();
