import { use } from "../state.js";

export function send(message) {
  const host = use("messaging");
  host.sent.push(message);
  return `message-${host.sent.length}`;
}
