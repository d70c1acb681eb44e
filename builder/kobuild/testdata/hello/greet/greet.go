// Package greet is a module-local package the test function imports.
package greet

// Hello returns the greeting.
func Hello(v string) string { return "hello " + v }
