module example.com/bodyapp

go 1.26
