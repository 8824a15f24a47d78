// Package style is a linter for Polish prose that flags negative linguistic
// transfer from English: e-mail formulas translated word for word, punctuation
// of English letters, English quotation marks, decimal points, English date
// formats, Title Case headings, "5-ty"-style ordinals and a missing comma
// before subordinating words.
//
// Each rule has a stable id (see Rules). Findings carry byte offsets into the
// linted text, a Polish message and, where one exists, a suggested
// replacement.
//
// The linter prefers precision to recall: every rule is written so that it
// does not fire on correct Polish, even at the cost of missing some errors.
// The package is pure Go and has no dependencies outside the standard library.
package style
