// Command tokenize-bench measures pltune's tokenizer on the texts of a JSONL
// file (one JSON string per line): Encode called in sequence on one
// goroutine, and EncodeBatch over all cores. It prints one JSON line per
// mode; run.sh runs it beside HF's tokenizers on the same texts.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/pltune/pltune/tokenize"
)

func main() {
	dir := flag.String("tokenizer", "", "tokenizer directory or tokenizer.json")
	name := flag.String("name", "", "name to print")
	textsFile := flag.String("texts", "", "JSONL file of strings")
	seconds := flag.Float64("seconds", 3, "how long to run each mode")
	flag.Parse()
	if err := run(*dir, *name, *textsFile, *seconds); err != nil {
		fmt.Fprintln(os.Stderr, "tokenize-bench:", err)
		os.Exit(1)
	}
}

func run(dir, name, textsFile string, seconds float64) error {
	t0 := time.Now()
	tk, err := tokenize.Load(dir)
	if err != nil {
		return err
	}
	load := time.Since(t0)
	f, err := os.Open(textsFile)
	if err != nil {
		return err
	}
	defer f.Close()
	var texts []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var s string
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			return fmt.Errorf("%s: line %d: %w", textsFile, len(texts)+1, err)
		}
		texts = append(texts, s)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	modes := []struct {
		mode string
		pass func() int
	}{
		{"single", func() int {
			n := 0
			for _, s := range texts {
				n += len(tk.Encode(s, false))
			}
			return n
		}},
		{"batch", func() int {
			n := 0
			for _, ids := range tk.EncodeBatch(texts, false) {
				n += len(ids)
			}
			return n
		}},
	}
	out := json.NewEncoder(os.Stdout)
	for _, m := range modes {
		m.pass() // warm the word cache
		tokens := 0
		start := time.Now()
		for time.Since(start).Seconds() < seconds {
			tokens += m.pass()
		}
		el := time.Since(start).Seconds()
		if err := out.Encode(map[string]any{
			"impl": "go", "tokenizer": name, "mode": m.mode, "tokens_per_s": float64(tokens) / el,
			"load_s": load.Seconds(), "procs": runtime.GOMAXPROCS(0),
		}); err != nil {
			return err
		}
	}
	return nil
}
