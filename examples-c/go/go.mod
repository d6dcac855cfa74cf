module pagentgo

go 1.23

require example.invalid/parallel-agents/bindings/go v0.0.0

// The module from this source tree; a program outside it would require a published
// version instead (or keep a replace pointing at its checkout).
replace example.invalid/parallel-agents/bindings/go => ../../bindings/go
