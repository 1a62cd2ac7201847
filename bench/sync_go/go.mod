module gorosyncbench

go 1.19
