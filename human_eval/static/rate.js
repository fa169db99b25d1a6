// Keyboard shortcuts for the rating page: a key presses the button marked data-key="<key>".
"use strict";
(function () {
  let busy = false;  // one submission per page: a held or repeated key never sends two answers
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat || busy) return;
    const key = event.key.toLowerCase();
    const button = Array.from(document.querySelectorAll("[data-key]")).find(function (el) {
      return el.dataset.key === key;
    });
    if (!button || button.disabled) return;
    event.preventDefault();
    busy = true;
    button.click();
  });
})();
