module example.com/crashapp

go 1.26
