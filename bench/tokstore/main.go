// Command tokstore-bench makes synthetic token stores and measures how fast
// a store's rows are delivered.
//
//	synth  -out DIR -tokens N -tokenizer PATH   a text store of N random ids
//	       (documents of 100 to 4,000 tokens, BOS first, EOS last) with a
//	       valid manifest naming the tokenizer at PATH (its vocabulary size
//	       and SHA-256), for measuring training at a scale that would take
//	       hours to tokenize here
//	loader -store DIR -row-len L -batch B -seconds S   rows in the seeded
//	       shuffled order, as training reads them: prints open time, rows/s
//	       and tokens/s, and peak RSS
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pltune/pltune/tokenize"
	"github.com/pltune/pltune/tokstore"
)

func main() {
	if len(os.Args) < 2 {
		log.Fatal("usage: tokstore-bench synth|loader [flags]")
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	out := fs.String("out", "", "store to write")
	store := fs.String("store", "", "store to read")
	tokens := fs.Int64("tokens", 10_000_000, "tokens to write")
	tokPath := fs.String("tokenizer", "", "tokenizer the synthetic store claims")
	rowLen := fs.Int("row-len", 1024, "row length")
	batch := fs.Int("batch", 8, "rows per batch")
	seconds := fs.Float64("seconds", 5, "how long to read")
	fs.Parse(os.Args[2:])
	switch os.Args[1] {
	case "synth":
		synth(*out, *tokens, *tokPath)
	case "loader":
		loader(*store, *rowLen, *batch, *seconds)
	default:
		log.Fatalf("unknown mode %q", os.Args[1])
	}
}

func synth(dir string, n int64, tokPath string) {
	tok, err := tokenize.Load(tokPath)
	if err != nil {
		log.Fatal(err)
	}
	sum, err := tokstore.TokenizerSHA256(tokPath)
	if err != nil {
		log.Fatal(err)
	}
	eos, _ := tok.TokenToID(tok.DocumentEndToken())
	bos := 1
	w, err := tokstore.NewWriter(dir, tokstore.TypeText, tokstore.TokenizerInfo{SHA256: sum, VocabSize: tok.VocabSize(), EOSID: eos}, 0)
	if err != nil {
		log.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	start := time.Now()
	ids := make([]int, 0, 4000)
	for written := int64(0); written < n; {
		l := min(int64(100+r.IntN(3900)), n-written)
		ids = ids[:0]
		ids = append(ids, bos)
		for int64(len(ids)) < l-1 {
			ids = append(ids, 3+r.IntN(tok.VocabSize()-3))
		}
		ids = append(ids, eos)
		if err := w.Add(ids, nil); err != nil {
			log.Fatal(err)
		}
		written += int64(len(ids))
	}
	m, err := w.Close()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("synth: %d tokens, %d documents, %d shards in %.1f s\n", m.Tokens, m.Docs, len(m.Shards), time.Since(start).Seconds())
}

func loader(dir string, rowLen, batch int, seconds float64) {
	t0 := time.Now()
	s, err := tokstore.Open(dir)
	if err != nil {
		log.Fatal(err)
	}
	rows, err := tokstore.TextRows(s, rowLen)
	if err != nil {
		log.Fatal(err)
	}
	l := &tokstore.Loader{Rows: rows, Seed: 42, BatchSize: batch}
	// The first batch draws the epoch's order: part of starting.
	if _, err := l.Next(); err != nil {
		log.Fatal(err)
	}
	open := time.Since(t0)
	if os.Getenv("RSS_DEBUG") != "" {
		b, _ := os.ReadFile("/proc/self/status")
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "Rss") || strings.HasPrefix(l, "VmHWM") {
				fmt.Fprintln(os.Stderr, l)
			}
		}
	}
	t1 := time.Now()
	var nrows, ntok int64
	for time.Since(t1).Seconds() < seconds {
		b, err := l.Next()
		if err != nil {
			log.Fatal(err)
		}
		for _, r := range b {
			nrows++
			ntok += int64(r.Len())
		}
	}
	el := time.Since(t1).Seconds()
	if os.Getenv("RSS_DEBUG") != "" {
		b, _ := os.ReadFile("/proc/self/status")
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "Rss") || strings.HasPrefix(l, "VmHWM") {
				fmt.Fprintln(os.Stderr, l)
			}
		}
	}
	res := map[string]any{
		"store_tokens": s.Tokens(), "rows": rows.Len(), "row_len": rowLen, "open_and_first_batch_s": open.Seconds(),
		"rows_per_s": float64(nrows) / el, "tokens_per_s": float64(ntok) / el, "peak_rss_mb": peakRSSMB(),
	}
	b, _ := json.Marshal(res)
	fmt.Println(string(b))
}

// peakRSSMB reads VmHWM from /proc/self/status.
func peakRSSMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return -1
}
