package quant

// DetInput gives the external tests (package quant_test) the same deterministic input as the internal
// ones, so both compare against figures from one C harness.
var DetInput = detInput
