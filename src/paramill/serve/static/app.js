// paramill serve: live run progress (server-sent events), cancel, local times. No dependencies.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const td of document.querySelectorAll("td.when[data-ts]")) {
    const ts = parseFloat(td.dataset.ts);
    if (!isNaN(ts)) td.textContent = new Date(ts * 1000).toLocaleString();
  }
  const run = document.getElementById("run");
  if (!run) return;
  const id = run.dataset.id;
  const cancel = document.getElementById("cancel-button");
  if (cancel) {
    cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      cancel.textContent = "Cancelling…";
      await fetch(`/api/runs/${id}`, { method: "DELETE" });
    });
  }
  const final = ["completed", "failed", "cancelled"];
  if (final.includes(run.dataset.status)) return;
  const status = document.getElementById("status");
  const progress = document.getElementById("progress");
  const stream = document.getElementById("stream");
  const events = new EventSource(`/api/runs/${id}/events`);
  const show = (data) => {
    if (data.status) { status.textContent = data.status; status.className = `badge ${data.status}`; }
    if (data.cells_total) progress.textContent = `${data.cells_done || 0} of ${data.cells_total} cells`;
    if (data.output !== undefined) { stream.hidden = false; stream.textContent = data.output; }
  };
  events.addEventListener("progress", (e) => show(JSON.parse(e.data)));
  events.addEventListener("status", (e) => {
    const data = JSON.parse(e.data);
    show(data);
    if (final.includes(data.status)) { events.close(); window.location.reload(); }
  });
});
