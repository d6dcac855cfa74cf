module pagentgo

go 1.19
