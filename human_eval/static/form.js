// The offline rating form: every item is in the page; answers live in localStorage and are saved as JSON.
"use strict";
(function () {
  const body = document.body;
  const campaign = body.dataset.campaign, rater = body.dataset.rater, signature = body.dataset.signature;
  const storageKey = "mgbench-rating:" + campaign + ":" + rater + ":" + signature.slice(0, 16);
  const sections = Array.from(document.querySelectorAll("section.item"));
  const answerBox = document.getElementById("answer");
  let state = { answers: {}, order: [] };
  let storage = null;
  try {
    storage = window.localStorage;
    const saved = storage.getItem(storageKey);
    if (saved) state = JSON.parse(saved);
  } catch (err) {
    storage = null;
    document.getElementById("storage-warning").hidden = false;
  }

  function persist() {
    if (storage) storage.setItem(storageKey, JSON.stringify(state));
  }

  function current() {
    return sections.find(function (s) { return !(s.dataset.item in state.answers); }) || null;
  }

  function show() {
    const next = current();
    sections.forEach(function (s) { s.hidden = s !== next; });
    answerBox.hidden = next === null;
    document.getElementById("done").hidden = next !== null;
    if (next) {
      const failure = next.dataset.failure === "1";
      answerBox.querySelectorAll(".failure-only").forEach(function (el) { el.hidden = !failure; });
      answerBox.querySelectorAll(".plain-only").forEach(function (el) { el.hidden = failure; });
    }
    const done = state.order.length;
    document.getElementById("progress").value = done;
    document.getElementById("progress-text").textContent = done + " of " + sections.length + " rated";
    document.getElementById("undo").disabled = done === 0;
  }

  function answer(choice) {
    const item = current();
    if (!item) return;
    const parts = choice.split(":");
    state.answers[item.dataset.item] = {
      item_id: item.dataset.item, verdict: parts[0], failure_kind: parts[1] || null,
      position: Number(item.dataset.position), rated_at: new Date().toISOString(),
    };
    state.order.push(item.dataset.item);
    persist();
    show();
  }

  function undo() {
    const last = state.order.pop();
    if (last !== undefined) delete state.answers[last];
    persist();
    show();
  }

  function save() {
    const file = {
      format: body.dataset.format, version: Number(body.dataset.version), campaign: campaign, rater: rater,
      signature: signature, saved_at: new Date().toISOString(),
      answers: state.order.map(function (id) { return state.answers[id]; }),
    };
    const blob = new Blob([JSON.stringify(file, null, 1)], { type: "application/json" });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = "ratings-" + campaign + "-" + rater + ".json";
    document.body.appendChild(link);
    link.click();
    link.remove();
  }

  answerBox.querySelectorAll("[data-choice]").forEach(function (button) {
    button.addEventListener("click", function () { answer(button.dataset.choice); });
  });
  document.getElementById("undo").addEventListener("click", undo);
  document.getElementById("save").addEventListener("click", save);
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    const key = event.key.toLowerCase();
    const button = Array.from(document.querySelectorAll("[data-key]")).find(function (el) {
      return el.dataset.key === key && !el.hidden && !el.disabled && !el.closest("[hidden]");
    });
    if (!button) return;
    event.preventDefault();
    button.click();
  });
  show();
})();
