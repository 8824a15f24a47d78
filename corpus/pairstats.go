package corpus

import (
	"context"
	"fmt"
	"io"
	"iter"
	"math"
	"strings"
	"unicode/utf8"
)

// PairStats describes preference data: how many pairs, how long prompts are,
// how long chosen and rejected responses are, and how often the chosen one
// is the longer (a share far from 50% warns that a preference objective may
// learn length rather than quality), with the ratings when the file has
// them.
type PairStats struct {
	Pairs            int          `json:"pairs"`
	MultiTurnPrompts int          `json:"multi_turn_prompts"` // prompts with more than one user turn
	WithSystem       int          `json:"with_system"`
	PromptChars      Distribution `json:"prompt_chars"`
	ChosenChars      Distribution `json:"chosen_chars"`
	RejectedChars    Distribution `json:"rejected_chars"`
	// ChosenLonger is the percentage of pairs whose chosen response has
	// more characters than the rejected one.
	ChosenLonger float64 `json:"chosen_longer_percent"`
	// Ratings counts pairs by "chosen/rejected" rating, e.g. "5/2".
	Ratings []Count `json:"ratings,omitempty"`
}

func messagesChars(msgs []Message) int {
	n := 0
	for _, m := range msgs {
		n += utf8.RuneCountInString(m.Content)
	}
	return n
}

// ComputePairStats reads every pair of pairs.
func ComputePairStats(ctx context.Context, pairs iter.Seq2[PreferencePair, error]) (*PairStats, error) {
	var st PairStats
	var prompt, chosen, rejected []int32
	longer := 0
	ratings := map[string]int{}
	for p, err := range pairs {
		if err != nil {
			return nil, err
		}
		if st.Pairs++; st.Pairs%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		users := 0
		for _, m := range p.Prompt {
			if m.Role == RoleUser {
				users++
			}
		}
		if users > 1 {
			st.MultiTurnPrompts++
		}
		if len(p.Prompt) > 0 && p.Prompt[0].Role == RoleSystem {
			st.WithSystem++
		}
		c, r := messagesChars(p.Chosen), messagesChars(p.Rejected)
		if c > r {
			longer++
		}
		clamp := func(n int) int32 { return int32(min(n, math.MaxInt32)) }
		prompt, chosen, rejected = append(prompt, clamp(messagesChars(p.Prompt))), append(chosen, clamp(c)), append(rejected, clamp(r))
		if p.ChosenRating != nil || p.RejectedRating != nil {
			ratings[rating(p.ChosenRating)+"/"+rating(p.RejectedRating)]++
		}
	}
	st.PromptChars, st.ChosenChars, st.RejectedChars = distribution(prompt), distribution(chosen), distribution(rejected)
	st.ChosenLonger = percent(longer, st.Pairs)
	b := &StatsBuilder{n: st.Pairs}
	if len(ratings) > 0 {
		st.Ratings = b.counts(ratings, byCount)
	}
	return &st, nil
}

func rating(r *float64) string {
	if r == nil {
		return "-"
	}
	return fmt.Sprint(*r)
}

// WriteMarkdown renders the pair statistics as Markdown tables.
func (st *PairStats) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "| Pairs | Multi-turn prompts | With system prompt | Chosen longer than rejected |\n|---:|---:|---:|---:|\n| %s | %s | %s | %.2f%% |\n\n",
		group(st.Pairs), group(st.MultiTurnPrompts), group(st.WithSystem), st.ChosenLonger)
	b.WriteString("| Characters | Total | Mean | Median | P90 | Max |\n|---|---:|---:|---:|---:|---:|\n")
	for _, r := range []struct {
		name string
		d    Distribution
	}{{"prompt", st.PromptChars}, {"chosen", st.ChosenChars}, {"rejected", st.RejectedChars}} {
		fmt.Fprintf(&b, "| %s | %s | %.1f | %s | %s | %s |\n", r.name, group(int(r.d.Total)), r.d.Mean, group(r.d.Median), group(r.d.P90), group(r.d.Max))
	}
	if len(st.Ratings) > 0 {
		b.WriteString("\n| Rating chosen/rejected | Pairs | % |\n|---|---:|---:|\n")
		for _, c := range st.Ratings {
			fmt.Fprintf(&b, "| %s | %s | %.2f |\n", c.Key, group(c.Count), c.Percent)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
