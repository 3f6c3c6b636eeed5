// The mock host of the running call, shared by ../testing.js and the
// stand-ins of the contract's imports (./imports/).

let current = null;

export function enter(host) {
  current = host;
}

export function leave() {
  current = null;
}

/** A capability failure, shaped as componentize-js throws it. */
export class ComponentError extends Error {
  constructor(payload) {
    super(`${payload.tag}${payload.val === undefined ? "" : `: ${JSON.stringify(payload.val)}`}`);
    this.payload = payload;
  }
}

/** The host of the running call, once the plugin declared `capability`. */
export function use(capability) {
  if (!current) {
    throw new Error(
      "a capability was called outside the mock host: run the plugin with new MockHost().runAction, deliver or parseCallback",
    );
  }
  if (!current.declared.includes(capability)) {
    throw new ComponentError({ tag: "denied", val: `the plugin did not declare the ${capability} capability` });
  }
  return current;
}
