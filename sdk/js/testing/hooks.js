// Module resolution hooks (see ./register.js): the contract's imports,
// `flowhost:plugin/<interface>@<version>`, resolve to the mock host's
// stand-ins in ./imports/.

const contract = /^flowhost:plugin\/([a-z-]+)@0\.1\.0$/;

export async function resolve(specifier, context, next) {
  const found = contract.exec(specifier);
  if (!found) return next(specifier, context);
  return { url: new URL(`./imports/${found[1]}.js`, import.meta.url).href, shortCircuit: true };
}
