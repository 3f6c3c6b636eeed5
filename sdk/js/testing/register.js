// `node --import <sdk>/js/testing/register.js --test`: the plugin's imports
// of the contract go to the mock host of ../testing.js.
import { register } from "node:module";

register("./hooks.js", import.meta.url);
