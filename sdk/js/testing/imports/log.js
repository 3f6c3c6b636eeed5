import { use } from "../state.js";

export function log(level, message, _fields) {
  try {
    use("log").logs.push([level, message]);
  } catch {
    // flowhost drops an undeclared log line; it does not fail the call
  }
}
