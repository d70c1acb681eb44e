// Command nostartfn exits with status 4 as soon as it starts, before it
// listens: a function that never starts.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "nostartfn: no configuration, giving up")
	os.Exit(4)
}
