import { ComponentError, use } from "../state.js";

export function get(key) {
  const data = use("conversation-data").data;
  return key in data ? JSON.stringify(data[key]) : undefined;
}

export function set(key, value) {
  let parsed;
  try {
    parsed = JSON.parse(value);
  } catch (error) {
    throw new ComponentError({ tag: "invalid", val: `not JSON: ${error.message}` });
  }
  use("conversation-data").data[key] = parsed;
}

export function remove(key) {
  delete use("conversation-data").data[key];
}
