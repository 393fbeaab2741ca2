// Package greet is the hello module's one dependency.
package greet

func Hello() string { return "hello" }
