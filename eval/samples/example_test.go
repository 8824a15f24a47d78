package samples_test

import (
	"bufio"
	"fmt"

	"github.com/pltune/pltune/eval/samples"
)

func ExampleFS() {
	f, err := samples.FS().Open("mc.jsonl")
	if err != nil {
		panic(err)
	}
	defer f.Close()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); {
		n++
	}
	fmt.Println(n, "multiple-choice samples")
	// Output: 36 multiple-choice samples
}
