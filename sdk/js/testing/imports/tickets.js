import { use } from "../state.js";

export function create(ticket) {
  const host = use("tickets");
  host.tickets.push(ticket);
  return `ticket-${host.tickets.length}`;
}
