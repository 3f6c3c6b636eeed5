import { use } from "../state.js";

export function render(template) {
  const rendered = use("templates").templates.get(template);
  return rendered === undefined ? template : rendered;
}
