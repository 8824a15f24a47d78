package eval

import "fmt"

// Metric is one number a run produced, named so that two runs can be lined
// up.
type Metric struct {
	Task string `json:"task"`
	Kind Kind   `json:"kind"`
	// Key names the metric within its task: "accuracy",
	// "accuracy/history", "acc_norm", "false_refusal_rate",
	// "false_refusal_rate/homonyms", "words_ratio", "style_per_1000_words" …
	Key   string  `json:"key"`
	Value float64 `json:"value"`
	// Better is +1 when higher is better, -1 when lower is, 0 when neither
	// (verbosity is judged against the reference, not by direction).
	Better int `json:"better"`
}

// Metrics lists r's numbers in a stable order: tasks as run, each task's
// headline metric first.
func (r *Result) Metrics() []Metric {
	var ms []Metric
	for i := range r.Tasks {
		t := &r.Tasks[i]
		add := func(key string, v float64, better int) {
			ms = append(ms, Metric{Task: t.Name, Kind: t.Kind, Key: key, Value: v, Better: better})
		}
		switch {
		case t.OpenQA != nil:
			add("accuracy", t.OpenQA.Rate, 1)
			for _, c := range t.OpenQA.Categories {
				add("accuracy/"+c.Category, c.Rate, 1)
			}
		case t.MC != nil:
			if t.MC.Acc != nil {
				add("acc", t.MC.Acc.Rate, 1)
				add("acc_norm", t.MC.AccNorm.Rate, 1)
			}
			if t.MC.Generative != nil {
				add("generative_acc", t.MC.Generative.Rate, 1)
			}
		case t.Refusal != nil:
			if t.Refusal.Benign > 0 {
				add("false_refusal_rate", t.Refusal.FalseRefusalRate, -1)
			}
			if t.Refusal.Harmful > 0 {
				add("harmful_refusal_rate", t.Refusal.HarmfulRefusalRate, 1)
			}
			for _, c := range t.Refusal.Categories {
				if c.Harmful {
					add("harmful_refusal_rate/"+c.Category, c.Rate, 1)
				} else {
					add("false_refusal_rate/"+c.Category, c.Rate, -1)
				}
			}
		case t.Verbosity != nil:
			v := t.Verbosity
			add("words_ratio", v.Words.Ratio, 0)
			add("words_mean", v.Words.Response.Mean, 0)
			add("words_median", v.Words.Response.Median, 0)
			add("words_p90", v.Words.Response.P90, 0)
			add("chars_ratio", v.Chars.Ratio, 0)
			if v.Tokens != nil {
				add("tokens_ratio", v.Tokens.Ratio, 0)
				add("tokens_mean", v.Tokens.Response.Mean, 0)
			}
		}
		if t.Style != nil {
			add("style_per_1000_words", t.Style.Per1000Words, -1)
		}
	}
	return ms
}

// Comparison lines up two runs' metrics.
type Comparison struct {
	A    string          `json:"a"` // label of the first run (its model)
	B    string          `json:"b"`
	Rows []ComparisonRow `json:"rows"`
}

// ComparisonRow is one metric in both runs; A or B is nil when only one run
// has it.
type ComparisonRow struct {
	Task   string   `json:"task"`
	Kind   Kind     `json:"kind"`
	Key    string   `json:"key"`
	A      *float64 `json:"a,omitempty"`
	B      *float64 `json:"b,omitempty"`
	Delta  *float64 `json:"delta,omitempty"` // B − A
	Better int      `json:"better"`
	// Verdict is "better", "worse" or "same" for B against A, "" when the
	// metric has no direction or a run lacks it.
	Verdict string `json:"verdict,omitempty"`
}

// Compare lines up b's metrics against a's, in a's order followed by those
// only b has. The labels are the model names, suffixed when they are equal.
func Compare(a, b *Result) *Comparison {
	c := &Comparison{A: a.Model, B: b.Model}
	if c.A == c.B {
		c.A, c.B = fmt.Sprintf("%s (A)", a.Model), fmt.Sprintf("%s (B)", b.Model)
	}
	type key struct{ task, key string }
	bs := map[key]Metric{}
	for _, m := range b.Metrics() {
		bs[key{m.Task, m.Key}] = m
	}
	seen := map[key]bool{}
	for _, m := range a.Metrics() {
		k := key{m.Task, m.Key}
		seen[k] = true
		row := ComparisonRow{Task: m.Task, Kind: m.Kind, Key: m.Key, A: ptr(m.Value), Better: m.Better}
		if mb, ok := bs[k]; ok {
			row.B = ptr(mb.Value)
			row.Delta = ptr(mb.Value - m.Value)
			row.Verdict = verdict(*row.Delta, m.Better)
		}
		c.Rows = append(c.Rows, row)
	}
	for _, m := range b.Metrics() {
		if !seen[key{m.Task, m.Key}] {
			c.Rows = append(c.Rows, ComparisonRow{Task: m.Task, Kind: m.Kind, Key: m.Key, B: ptr(m.Value), Better: m.Better})
		}
	}
	return c
}

func verdict(delta float64, better int) string {
	const eps = 1e-12
	switch {
	case better == 0:
		return ""
	case delta > -eps && delta < eps:
		return "same"
	case (delta > 0) == (better > 0):
		return "better"
	}
	return "worse"
}

// Row returns the row for task and key, or nil.
func (c *Comparison) Row(task, key string) *ComparisonRow {
	for i := range c.Rows {
		if c.Rows[i].Task == task && c.Rows[i].Key == key {
			return &c.Rows[i]
		}
	}
	return nil
}
