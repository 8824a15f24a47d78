package eval

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// choiceLetters label multiple-choice answers in the generative mode.
const choiceLetters = "ABCDEFGHIJ"

// TargetDelimiter precedes every continuation in log-likelihood multiple
// choice, as in lm-evaluation-harness.
const TargetDelimiter = " "

// MCContext is the context that log-likelihood multiple choice scores the
// answers against: the question as a cloze, so that each continuation is
// TargetDelimiter followed by an answer's text.
func MCContext(it *MCItem) string {
	return "Pytanie: " + strings.TrimSpace(it.Question) + "\nOdpowiedź:"
}

// MCPrompt is the user message of the generative mode: the question, the
// answers labelled A, B, C… and the request for one letter.
func MCPrompt(it *MCItem) string {
	var b strings.Builder
	b.WriteString(strings.TrimSpace(it.Question))
	b.WriteString("\n\n")
	for i, a := range it.Answers {
		fmt.Fprintf(&b, "%c. %s\n", choiceLetters[i], strings.TrimSpace(a))
	}
	letters := choiceLetters[:len(it.Answers)]
	list := strings.Join(strings.Split(letters[:len(letters)-1], ""), ", ") + " lub " + letters[len(letters)-1:]
	fmt.Fprintf(&b, "\nOdpowiedz jedną literą (%s).", list)
	return b.String()
}

// ArgmaxChoice returns the index of the highest log-likelihood (acc) and
// of the highest log-likelihood per character of the answer (acc_norm), as
// lm-evaluation-harness computes them. Ties go to the lower index.
func ArgmaxChoice(logprobs []float64, answers []string) (acc, accNorm int) {
	best, bestNorm := 0, 0
	for i := range logprobs {
		if logprobs[i] > logprobs[best] {
			best = i
		}
		if perChar(logprobs, answers, i) > perChar(logprobs, answers, bestNorm) {
			bestNorm = i
		}
	}
	return best, bestNorm
}

// perChar divides by the answer's length in characters (code points), without
// the delimiter: lm-evaluation-harness measures doc_to_choice's strings.
func perChar(logprobs []float64, answers []string, i int) float64 {
	n := max(utf8.RuneCountInString(answers[i]), 1)
	return logprobs[i] / float64(n)
}

var (
	// "Odpowiedź: B", "Poprawna odpowiedź to (C)", "Answer: **D**". The keyword
	// is case-insensitive; the letter must be a capital, since lower-case a, i,
	// o, u, w, z are Polish words.
	choiceAfterKeyword = regexp.MustCompile(`(?i:odpowied[źz]|answer|wybieram|wybór)(?:\s+(?i:to|brzmi|jest|is))?\s*[:\-–]?\s*[*_(\[]*\s*([A-J])(?:[^\p{L}\p{N}]|$)`)
	// A response that starts with the letter and a separator: "B.", "B)",
	// "(B)", "**B**", "B:" or just "B". A capital A followed by a space is
	// also the Polish conjunction, so a bare space is not enough.
	choiceAtStart = regexp.MustCompile(`^[*_(\[]*([A-J])(?:[*_)\].:]|\s*$)`)
)

// ExtractChoice finds the letter a generated answer chose and returns its
// index (A is 0), or -1 when no letter among the first n can be read off.
func ExtractChoice(response string, n int) int {
	s := strings.TrimSpace(response)
	for _, re := range []*regexp.Regexp{choiceAtStart, choiceAfterKeyword} {
		if m := re.FindStringSubmatch(s); m != nil {
			if i := int(m[1][0] - 'A'); i < n {
				return i
			}
		}
	}
	return -1
}
