// The post editor (/admin/posts/...), enhanced: an "Insert" button next to each uploaded image's
// Markdown puts it into the text at the cursor. Without JavaScript, copy and paste the Markdown.
// A file under /static, no inline script: the Content-Security-Policy (default-src 'self') allows it.
"use strict";
(function () {
  const body = document.getElementById("body");
  if (!body) return;
  for (const field of document.querySelectorAll("input.admin-snippet")) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "admin-button admin-button-secondary admin-button-small admin-insert";
    button.textContent = "Insert into the text";
    button.addEventListener("click", function () {
      const start = body.selectionStart;
      const end = body.selectionEnd;
      body.setRangeText("\n\n" + field.value + "\n\n", start, end, "end");
      body.focus();
    });
    field.insertAdjacentElement("afterend", button);
  }
})();
