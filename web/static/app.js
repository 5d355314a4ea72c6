// sgflow: start GOV.UK Frontend components, on page load and in content htmx swaps in.
import { initAll } from "./govuk/govuk-frontend.min.js";

initAll();

if (window.htmx) {
  window.htmx.onLoad((element) => {
    // The whole body was initialised above; only initialise newly swapped-in content.
    if (element !== document.body) {
      initAll({ scope: element });
    }
  });

  // Claim and Release in the inbox and on a task page (issue 17, point 10): htmx swaps the whole #inbox (or
  // #task-page), which would drop the keyboard focus to the top of the page. Afterwards focus goes back to what
  // changed (the row's new Release or Claim button, else its task link; on a task page its new button) and
  // #inbox-status / #task-status (role="status", aria-live="polite", outside the swapped part) says what
  // happened in one sentence. When the answer shows an error summary, GOV.UK Frontend's error summary takes the
  // focus instead.
  let claimAction = null;

  // The answers typed in a form (not its hidden fields), to put back after htmx draws the form again.
  const typedIn = (id) => {
    const form = document.getElementById(id);
    if (!form) {
      return null;
    }
    const fields = [...form.elements].filter((el) => el.name && el.type !== "hidden" && el.type !== "submit");
    return fields.map((el) => ({ name: el.name, value: el.value, type: el.type, checked: el.checked }));
  };
  const restoreTyped = (id, typed) => {
    const form = document.getElementById(id);
    if (!form || !typed) {
      return;
    }
    for (const field of typed) {
      const el = [...form.elements].find((candidate) => candidate.name === field.name
        && (field.type === "radio" || field.type === "checkbox" ? candidate.value === field.value : true));
      if (!el) {
        continue;
      }
      if (field.type === "radio" || field.type === "checkbox") {
        if (el.checked !== field.checked) {
          el.checked = field.checked;
          // GOV.UK Frontend shows a radio's or checkbox's conditional question on click
          el.dispatchEvent(new Event("click", { bubbles: true }));
        }
      } else {
        el.value = field.value;
      }
    }
  };
  document.body.addEventListener("htmx:beforeRequest", (event) => {
    const form = event.detail.elt;
    const region = form instanceof HTMLFormElement ? form.closest("#inbox, #task-page") : null;
    const match = region ? (form.getAttribute("action") || "").match(/^(.*)\/(claim|release)(\?.*)?$/) : null;
    if (!match) {
      return;
    }
    const heading = region.id === "task-page" ? region.querySelector("h1")
      : form.closest("tr") && form.closest("tr").querySelector("a[href]");
    claimAction = { form, region: region.id, href: match[1], verb: match[2],
                    title: heading ? heading.textContent.trim() : "the task", typed: typedIn("task-form") };
  });
  document.body.addEventListener("htmx:afterRequest", (event) => {
    if (claimAction && event.detail.elt === claimAction.form && !event.detail.successful) {
      claimAction = null;
    }
  });
  // What was typed in the task's form before Claim or Release stays: put back as soon as the swap has drawn the
  // form afresh (in the same task as the swap, so nobody sees it empty).
  document.body.addEventListener("htmx:afterSwap", () => {
    const page = claimAction && claimAction.region === "task-page" && document.getElementById("task-page");
    if (page && !page.contains(claimAction.form) && claimAction.typed) {
      restoreTyped("task-form", claimAction.typed);
      claimAction.typed = null;
    }
  });
  document.body.addEventListener("htmx:afterSettle", () => {
    const inbox = claimAction && document.getElementById(claimAction.region);
    if (!claimAction || !inbox || inbox.contains(claimAction.form)) {
      return;
    }
    const done = claimAction;
    claimAction = null;
    const status = document.getElementById(done.region === "inbox" ? "inbox-status" : "task-status");
    if (inbox.querySelector(".govuk-error-summary")) {
      return;
    }
    let target;
    if (done.region === "task-page") {
      // the task page: its one Claim/Release form's button
      const again = inbox.querySelector("form[hx-post] button");
      target = again || inbox.querySelector("h1");
      if (target && target.tagName === "H1") {
        target.setAttribute("tabindex", "-1");
      }
    } else {
      const link = [...inbox.querySelectorAll("a[href]")].find((a) => a.getAttribute("href").split("?")[0] === done.href);
      const row = link && link.closest("tr");
      target = (row && row.querySelector("button")) || link;
    }
    if (target) {
      target.focus();
    }
    if (status) {
      status.textContent = `${done.verb === "claim" ? "You claimed" : "You released"}: ${done.title}.`;
    }
  });

  // The inbox's periodic update (issue 17, point 10): polling answers 204 while nothing changed; when the list did
  // change htmx swaps #inbox, and #inbox-status says so in one sentence (the list's caption: "4 tasks"). If the
  // keyboard focus was in the list, it goes back to the same link or button when it is still there.
  let pollSwap = null;
  document.body.addEventListener("htmx:beforeSwap", (event) => {
    const { target, requestConfig } = event.detail;
    if (!target || target.id !== "inbox" || !requestConfig || !/[?&]poll=1/.test(requestConfig.path || "")) {
      return;
    }
    const active = document.activeElement;
    const within = active && target.contains(active) ? active : null;
    const anchor = within && within.closest("a[href], form[action]");
    pollSwap = { focus: anchor ? (anchor.getAttribute("href") || anchor.getAttribute("action")) : null,
                 button: within && within.tagName === "BUTTON" };
  });
  document.body.addEventListener("htmx:afterSettle", () => {
    const inbox = pollSwap && document.getElementById("inbox");
    if (!pollSwap || !inbox) {
      return;
    }
    const done = pollSwap;
    pollSwap = null;
    if (done.focus) {
      const again = [...inbox.querySelectorAll("a[href], form[action]")].find(
        (el) => (el.getAttribute("href") || el.getAttribute("action")) === done.focus);
      const target = again && (again.tagName === "FORM" ? again.querySelector("button") : again);
      if (target) {
        target.focus();
      }
    }
    const status = document.getElementById("inbox-status");
    const caption = inbox.querySelector("caption");
    const empty = inbox.querySelector("p.govuk-body");
    const what = caption ? caption.textContent.trim() : (empty ? empty.textContent.trim() : "");
    if (status) {
      // emptied first, so the same sentence twice (the list changed again, same count) is still announced
      const message = `Your task list has been updated${what ? `: ${what}` : ""}.`.replace(/\.\.$/, ".");
      status.textContent = "";
      window.setTimeout(() => { status.textContent = message; }, 100);
    }
  });

  // An error answer to a claim/release (403, 404, 409, 500...) is the error page's content block: show it in
  // place of the page's main content, as a full page load would. A failed poll is left alone (the next poll
  // tries again); 422 (a form with errors) swaps normally.
  document.body.addEventListener("htmx:beforeSwap", (event) => {
    const { xhr, requestConfig } = event.detail;
    if (xhr.status < 400 || xhr.status === 422) {
      return;
    }
    if (requestConfig && /[?&]poll=1/.test(requestConfig.path || "")) {
      return;
    }
    const main = document.getElementById("main-content");
    if (main) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
      event.detail.target = main;
      event.detail.swapOverride = "innerHTML";
    }
  });
}

// The arrangements editor (issue 17.7): "Go to line N" puts the cursor at the start of that line of the document box
// and scrolls it into view; without JavaScript the link still moves focus to the box. After htmx swaps the editor
// in, the page's <title> says "Error: " when the answer shows an error summary, as a full page does.
document.addEventListener("click", (event) => {
  const link = event.target instanceof Element ? event.target.closest("a.app-goto-line") : null;
  const box = link && document.getElementById("document");
  if (!box) {
    return;
  }
  event.preventDefault();
  const line = Number(link.dataset.line);
  const lines = box.value.split("\n");
  const start = lines.slice(0, Math.max(0, line - 1)).reduce((sum, text) => sum + text.length + 1, 0);
  const end = start + (lines[line - 1] || "").length;
  box.focus();
  box.setSelectionRange(start, end);
  const lineHeight = parseFloat(getComputedStyle(box).lineHeight) || 20;
  box.scrollTop = Math.max(0, (line - 3) * lineHeight);
});

if (window.htmx) {
  document.body.addEventListener("htmx:afterSwap", () => {
    const editor = document.getElementById("editor");
    if (!editor) {
      return;
    }
    const bare = document.title.replace(/^Error: /, "");
    document.title = editor.querySelector(".govuk-error-summary") ? `Error: ${bare}` : bare;
  });
}
