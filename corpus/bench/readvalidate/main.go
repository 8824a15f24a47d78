// Command readvalidate reads and validates a corpus file with package
// corpus and prints the tally: the Go side of read_validate.sh, kept apart
// from the pltune CLI so that the CLI's start-up (it links libtorch) does not
// count.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/pltune/pltune/corpus"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: readvalidate FILE")
		os.Exit(2)
	}
	r, err := corpus.Open(os.Args[1], corpus.Options{Policy: corpus.Lenient})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, err := range r.Samples(context.Background()) {
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	a := r.Accounting()
	fmt.Printf("read %d, accepted %d, rejected %d\n", a.Read, a.Accepted, a.Rejected)
}
