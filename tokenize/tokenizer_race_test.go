//go:build race

package tokenize

// The race detector slows loading and encoding about tenfold; under it the
// golden tests check a fifth of the strings and the variant, offset and
// round-trip tests (single-goroutine semantics, all checked in the normal
// run) are skipped.
func init() {
	goldenStep = 5
	raceEnabled = true
}
