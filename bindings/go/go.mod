module example.invalid/parallel-agents/bindings/go

go 1.23
