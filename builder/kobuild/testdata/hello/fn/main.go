// Command fn is the test function. It prints a greeting; it imports little
// so that a build with a cold Go build cache stays short.
package main

import (
	"fmt"
	"os"

	"example.com/hello/greet"
)

const version = "v1"

func main() {
	fmt.Fprintln(os.Stdout, greet.Hello(version))
}
