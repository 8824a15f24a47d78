//go:build race

package tokenize

// The race detector slows the tokenizer about tenfold; under it the golden
// tests check a fifth of the strings (the full run checks all).
func init() { goldenStep = 5 }
