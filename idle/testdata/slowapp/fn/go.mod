module example.com/slowapp

go 1.26
