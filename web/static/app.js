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
