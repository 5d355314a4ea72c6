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
}
