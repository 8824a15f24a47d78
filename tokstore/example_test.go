package tokstore_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"

	"github.com/pltune/pltune/tokenize"
	"github.com/pltune/pltune/tokstore"
)

// Tokenize a text file into a store, then read it as training rows in a
// seeded order that a resumed run continues.
func Example() {
	dir, err := os.MkdirTemp("", "tokstore-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	texts := []string{"Ala ma kota, a kot ma Alę.", "Stolicą Polski jest Warszawa.", "Wisła płynie przez Kraków."}
	tt, err := tokenize.TrainBPE(context.Background(), slices.Values(texts), tokenize.BPETrainOptions{VocabSize: 300})
	if err != nil {
		log.Fatal(err)
	}
	tokDir := filepath.Join(dir, "tokenizer")
	if err := tt.WriteDir(tokDir); err != nil {
		log.Fatal(err)
	}
	tok, err := tokenize.Load(tokDir)
	if err != nil {
		log.Fatal(err)
	}
	sum, err := tokstore.TokenizerSHA256(tokDir)
	if err != nil {
		log.Fatal(err)
	}
	text := filepath.Join(dir, "docs.txt")
	if err := os.WriteFile(text, []byte(texts[0]+"\n\n"+texts[1]+"\n\n"+texts[2]+"\n"), 0o644); err != nil {
		log.Fatal(err)
	}

	store := filepath.Join(dir, "store")
	res, err := tokstore.Build(context.Background(), store, []string{text}, tokstore.BuildOptions{Tokenizer: tok, TokenizerSHA256: sum})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Manifest.Type, res.Manifest.DType, res.Manifest.Docs, "documents")

	s, err := tokstore.Open(store)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	rows, err := tokstore.TextRows(s, 16)
	if err != nil {
		log.Fatal(err)
	}
	l := &tokstore.Loader{Rows: rows, Seed: 1, BatchSize: 2}
	first, _ := l.NextIndices()
	saved := l.Position()
	next, _ := l.NextIndices()

	resumed := &tokstore.Loader{Rows: rows, Seed: 1, BatchSize: 2}
	resumed.Seek(saved)
	again, _ := resumed.NextIndices()
	fmt.Println(len(first), slices.Equal(next, again))
	// Output:
	// text uint16 3 documents
	// 2 true
}
