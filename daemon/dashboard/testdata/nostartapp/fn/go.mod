module example.com/nostartapp

go 1.26
