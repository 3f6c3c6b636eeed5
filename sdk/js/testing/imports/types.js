// The contract's shared types have no functions.
export {};
