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
	// Stderr is the metric's standard error (StderrMethod "mean": the
	// harness's mean_stderr; "bootstrap": BootstrapIters resamples); 0 and
	// "" when the run holds no per-item scores for it.
	Stderr       float64 `json:"stderr"`
	StderrMethod string  `json:"stderr_method,omitempty"`
	N            int     `json:"n,omitempty"`

	s *series
}

// Metrics lists r's numbers in a stable order: tasks as run, each task's
// headline metric first.
func (r *Result) Metrics() []Metric {
	var ms []Metric
	for i := range r.Tasks {
		t := &r.Tasks[i]
		// add records a metric; s holds its items (agg "" when the metric
		// has none, as verbosity's).
		add := func(key string, v float64, better int, s series) {
			m := Metric{Task: t.Name, Kind: t.Kind, Key: key, Value: v, Better: better}
			if s.agg != "" && len(s.obs) > 0 {
				m.s = &s
				m.Stderr, m.StderrMethod = s.stderr()
				m.N = len(s.obs)
			}
			ms = append(ms, m)
		}
		items := func(agg, key string, keep func(*ItemResult) bool) series {
			return seriesOf(t.Items, agg, key, keep)
		}
		inCat := func(c string) func(*ItemResult) bool {
			return func(it *ItemResult) bool { return it.Category == c }
		}
		inGroup := func(g string) func(*ItemResult) bool {
			return func(it *ItemResult) bool { return it.Group == g }
		}
		harmful := func(h bool) func(*ItemResult) bool {
			return func(it *ItemResult) bool { return it.Harmful != nil && *it.Harmful == h }
		}
		none := series{}
		switch {
		case t.OpenQA != nil:
			add("accuracy", t.OpenQA.Rate, 1, items(aggMean, "accuracy", nil))
			for _, c := range t.OpenQA.Categories {
				add("accuracy/"+c.Category, c.Rate, 1, items(aggMean, "accuracy", inCat(c.Category)))
			}
		case t.MC != nil:
			head := "acc"
			if t.MC.Acc != nil {
				add("acc", t.MC.Acc.Rate, 1, items(aggMean, "acc", nil))
				add("acc_norm", t.MC.AccNorm.Rate, 1, items(aggMean, "acc_norm", nil))
			}
			if t.MC.Generative != nil {
				add("generative_acc", t.MC.Generative.Rate, 1, items(aggMean, "generative_acc", nil))
				if t.MC.Acc == nil {
					head = "generative_acc"
				}
			}
			for _, c := range t.MC.Types {
				add("accuracy/type/"+c.Category, c.Rate, 1, items(aggMean, head, inGroup(c.Category)))
			}
			for _, c := range t.MC.Subjects {
				add("accuracy/subject/"+c.Category, c.Rate, 1, items(aggMean, head, inCat(c.Category)))
			}
		case t.Harness != nil:
			for _, mv := range t.Harness.Metrics {
				add(mv.Name, mv.Value, 1, items(mv.Aggregation, mv.Name, nil))
			}
		case t.Refusal != nil:
			if t.Refusal.Benign > 0 {
				add("false_refusal_rate", t.Refusal.FalseRefusalRate, -1, items(aggMean, "refused", harmful(false)))
			}
			if t.Refusal.Harmful > 0 {
				add("harmful_refusal_rate", t.Refusal.HarmfulRefusalRate, 1, items(aggMean, "refused", harmful(true)))
			}
			for _, c := range t.Refusal.Categories {
				keep := func(it *ItemResult) bool { return inCat(c.Category)(it) && harmful(c.Harmful)(it) }
				if c.Harmful {
					add("harmful_refusal_rate/"+c.Category, c.Rate, 1, items(aggMean, "refused", keep))
				} else {
					add("false_refusal_rate/"+c.Category, c.Rate, -1, items(aggMean, "refused", keep))
				}
			}
		case t.Verbosity != nil:
			v := t.Verbosity
			add("words_ratio", v.Words.Ratio, 0, none)
			add("words_mean", v.Words.Response.Mean, 0, none)
			add("words_median", v.Words.Response.Median, 0, none)
			add("words_p90", v.Words.Response.P90, 0, none)
			add("chars_ratio", v.Chars.Ratio, 0, none)
			if v.Tokens != nil {
				add("tokens_ratio", v.Tokens.Ratio, 0, none)
				add("tokens_mean", v.Tokens.Response.Mean, 0, none)
			}
		}
		if t.Style != nil {
			add("style_per_1000_words", t.Style.Per1000Words, -1, items(aggPer1000, "style", nil))
		}
	}
	return ms
}

// Comparison lines up two runs' metrics.
type Comparison struct {
	A string `json:"a"` // label of the first run (its model)
	B string `json:"b"`
	// Alpha is the significance level verdicts are drawn at.
	Alpha float64         `json:"alpha"`
	Rows  []ComparisonRow `json:"rows"`
}

// ComparisonRow is one metric in both runs; A or B is nil when only one run
// has it.
type ComparisonRow struct {
	Task    string   `json:"task"`
	Kind    Kind     `json:"kind"`
	Key     string   `json:"key"`
	A       *float64 `json:"a,omitempty"`
	B       *float64 `json:"b,omitempty"`
	StderrA float64  `json:"stderr_a,omitempty"`
	StderrB float64  `json:"stderr_b,omitempty"`
	Delta   *float64 `json:"delta,omitempty"` // B − A
	Better  int      `json:"better"`
	// Test is the paired test of B against A on the items both answered;
	// nil when the runs hold no per-item scores for the metric.
	Test *PairedTest `json:"test,omitempty"`
	// Verdict is "better" or "worse" for B against A when the paired test
	// is significant at Alpha, "no significant change" when it is not,
	// "same" when nothing differs, "untested" when the runs hold no
	// per-item scores to test, and "" when the metric has no direction or
	// a run lacks it.
	Verdict string `json:"verdict,omitempty"`
}

// The verdicts.
const (
	VerdictBetter         = "better"
	VerdictWorse          = "worse"
	VerdictSame           = "same"
	VerdictNotSignificant = "no significant change"
	VerdictUntested       = "untested"
)

// DefaultAlpha is the significance level Compare uses.
const DefaultAlpha = 0.05

// Compare lines up b's metrics against a's at DefaultAlpha.
func Compare(a, b *Result) *Comparison { return CompareAt(a, b, DefaultAlpha) }

// CompareAt lines up b's metrics against a's, in a's order followed by those
// only b has, and tests each difference on the items both runs answered:
// McNemar's test for accuracies and rates (per-item 0 or 1), a paired
// bootstrap for the rest (F1, findings per 1,000 words). A difference is
// called better or worse only when the test's p-value is below alpha. The
// labels are the model names, suffixed when they are equal.
func CompareAt(a, b *Result, alpha float64) *Comparison {
	c := &Comparison{A: a.Model, B: b.Model, Alpha: alpha}
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
		row := ComparisonRow{Task: m.Task, Kind: m.Kind, Key: m.Key, A: ptr(m.Value), StderrA: m.Stderr, Better: m.Better}
		if mb, ok := bs[k]; ok {
			row.B, row.StderrB = ptr(mb.Value), mb.Stderr
			row.Delta = ptr(mb.Value - m.Value)
			if m.s != nil && mb.s != nil {
				row.Test = pairedTest(m.s, mb.s)
			}
			row.Verdict = verdict(*row.Delta, m.Better, row.Test, alpha)
		}
		c.Rows = append(c.Rows, row)
	}
	for _, m := range b.Metrics() {
		if !seen[key{m.Task, m.Key}] {
			c.Rows = append(c.Rows, ComparisonRow{Task: m.Task, Kind: m.Kind, Key: m.Key, B: ptr(m.Value), StderrB: m.Stderr, Better: m.Better})
		}
	}
	return c
}

func verdict(delta float64, better int, test *PairedTest, alpha float64) string {
	const eps = 1e-12
	switch {
	case better == 0:
		return ""
	case delta > -eps && delta < eps && (test == nil || test.AWins+test.BWins == 0):
		return VerdictSame
	case test == nil:
		return VerdictUntested
	case !(test.P < alpha):
		return VerdictNotSignificant
	case (delta > 0) == (better > 0):
		return VerdictBetter
	}
	return VerdictWorse
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
