import { ComponentError, use } from "../state.js";

export function send(request) {
  let host;
  try {
    host = use("http");
  } catch (error) {
    throw new ComponentError({ tag: "denied", val: error.payload ? error.payload.val : error.message });
  }
  host.requests.push(request);
  const found = host.answers.find(([method, url]) => method === request.method && url === request.url);
  if (!found) {
    throw new ComponentError({
      tag: "connection",
      val: `the mock host has no answer for ${request.method.toUpperCase()} ${request.url}`,
    });
  }
  const [, , answer] = found;
  if (answer.error) throw new ComponentError(answer.error);
  return answer;
}
