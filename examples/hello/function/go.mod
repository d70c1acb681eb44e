module example.com/hello/function

go 1.26
