// Package report turns eval results into files people read: a Markdown
// summary with tables, PNG charts (accuracy per category; two runs side by
// side on open-question accuracy, false refusals, verbosity and style) and
// the JSON result itself.
package report

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/pltune/pltune/eval"
)

// Markdown writes r as a Markdown report: settings, then one table per task.
// charts maps a task name to a chart's path relative to the report, linked
// under the task's table.
func Markdown(w io.Writer, r *eval.Result, charts map[string]string) error {
	bw := bufio.NewWriter(w)
	p := func(format string, a ...any) { fmt.Fprintf(bw, format, a...) }
	s := r.Settings
	p("# Evaluation of %s\n\n", cell(r.Model))
	p("Run %s – %s. Temperature %g, seed %d, multiple choice by %s, diacritics folded: %v, exact match: %v.",
		r.Started.Format("2006-01-02 15:04:05Z"), r.Finished.Format("15:04:05Z"), s.Temperature, s.Seed, s.MCMode, yes(s.FoldDiacritics), yes(s.ExactMatch))
	p(" %d model requests in this run, %d answers from the cache.\n", r.Requests, r.Cached)
	stderrs := map[string][]string{} // task → "metric ± se" for the headline metrics
	for _, m := range r.Metrics() {
		if m.StderrMethod != "" && !strings.Contains(m.Key, "/") && m.Kind != eval.KindHarness {
			stderrs[m.Task] = append(stderrs[m.Task], fmt.Sprintf("%s %s ± %s", m.Key, format(m.Key, m.Value, false), seFormat(m.Key, m.Stderr)))
		}
	}
	for _, t := range r.Tasks {
		p("\n## %s (%s)\n\n", cell(t.Name), kindName(t.Kind))
		switch {
		case t.OpenQA != nil:
			p("| category | correct | total | accuracy |\n|---|---:|---:|---:|\n")
			for _, c := range t.OpenQA.Categories {
				p("| %s | %d | %d | %s |\n", cell(c.Category), c.Correct, c.Total, pct(c.Rate))
			}
			p("| **overall** | **%d** | **%d** | **%s** |\n", t.OpenQA.Correct, t.OpenQA.Total, pct(t.OpenQA.Rate))
		case t.MC != nil:
			p("| metric | correct | total | accuracy |\n|---|---:|---:|---:|\n")
			for _, m := range []struct {
				name string
				a    *eval.Accuracy
			}{{"acc", t.MC.Acc}, {"acc_norm", t.MC.AccNorm}, {"generative", t.MC.Generative}} {
				if m.a != nil {
					p("| %s | %d | %d | %s |\n", m.name, m.a.Correct, m.a.Total, pct(m.a.Rate))
				}
			}
			if t.MC.Generative != nil {
				p("\n%d generated answers had no readable letter (counted wrong).\n", t.MC.Unparsed)
			}
			if len(t.MC.Types) > 1 {
				p("\n| exam type | correct | total | accuracy |\n|---|---:|---:|---:|\n")
				for _, c := range t.MC.Types {
					p("| %s | %d | %d | %s |\n", cell(c.Category), c.Correct, c.Total, pct(c.Rate))
				}
			}
			if len(t.MC.Subjects) > 1 {
				p("\n| subject | correct | total | accuracy |\n|---|---:|---:|---:|\n")
				for _, c := range t.MC.Subjects {
					p("| %s | %d | %d | %s |\n", cell(c.Category), c.Correct, c.Total, pct(c.Rate))
				}
			}
		case t.Harness != nil:
			h := t.Harness
			p("lm-evaluation-harness task %s (%s), %d documents.\n\n", cell(h.Task), h.Output, h.Docs)
			p("| metric | value | ± stderr | stderr by |\n|---|---:|---:|---|\n")
			for _, m := range h.Metrics {
				p("| %s | %.4f | %.4f | %s |\n", cell(m.Name), m.Value, m.Stderr, m.StderrMethod)
			}
			if h.Output == eval.HarnessGenerateUntil {
				p("\n%d generated answers held no answer the filter accepts (\"[invalid]\", counted wrong).\n", h.Invalid)
			}
		case t.Refusal != nil:
			rs := t.Refusal
			p("| prompts | count | refused | rate |\n|---|---:|---:|---:|\n")
			p("| benign (false refusals) | %d | %d | %s |\n", rs.Benign, rs.FalseRefusals, pct(rs.FalseRefusalRate))
			p("| harmful | %d | %d | %s |\n", rs.Harmful, rs.HarmfulRefused, pct(rs.HarmfulRefusalRate))
			if len(rs.Categories) > 0 {
				p("\n| category | side | prompts | refused | rate |\n|---|---|---:|---:|---:|\n")
				for _, c := range rs.Categories {
					side := "benign"
					if c.Harmful {
						side = "harmful"
					}
					p("| %s | %s | %d | %d | %s |\n", cell(c.Category), side, c.Prompts, c.Refused, pct(c.Rate))
				}
			}
		case t.Verbosity != nil:
			v := t.Verbosity
			p("| measure | mean | median | p90 | reference mean | ratio of means | median item ratio |\n|---|---:|---:|---:|---:|---:|---:|\n")
			row := func(name string, st *eval.LengthStats) {
				p("| %s | %.1f | %.1f | %.1f | %.1f | %.2f | %.2f |\n", name, st.Response.Mean, st.Response.Median, st.Response.P90, st.Reference.Mean, st.Ratio, st.MedianItemRatio)
			}
			row("characters", &v.Chars)
			row("words", &v.Words)
			if v.Tokens != nil {
				row("tokens", v.Tokens)
			}
			p("\n%d of %d responses hit the token limit.\n", v.Truncated, v.Words.Response.N)
		}
		if se := stderrs[t.Name]; len(se) > 0 {
			p("\nWith standard errors (n−1 sample deviation over √n; bootstrap for ratios): %s.\n", strings.Join(se, "; "))
		}
		if st := t.Style; st != nil {
			p("\nStyle: %d findings in %d words of %d responses: %.2f per 1,000 words.\n", st.Findings, st.Words, st.Responses, st.Per1000Words)
		}
		if c, ok := charts[t.Name]; ok {
			p("\n![%s](%s)\n", cell(t.Name), c)
		}
	}
	return bw.Flush()
}

// ComparisonMarkdown writes c as one table: metric, both runs, the
// difference and whether B is better. chart, when not empty, is linked below.
func ComparisonMarkdown(w io.Writer, c *eval.Comparison, charts []string) error {
	bw := bufio.NewWriter(w)
	p := func(format string, a ...any) { fmt.Fprintf(bw, format, a...) }
	p("# %s vs %s\n\n", cell(c.A), cell(c.B))
	p("Values ± their standard errors. B is called better or worse only when a paired test on the items both runs answered "+
		"(McNemar for accuracies and rates, a paired bootstrap of %d resamples otherwise) gives p < %g.\n\n", eval.BootstrapIters, c.Alpha)
	p("| task | metric | %s | %s | Δ (B − A) | test | p | B is |\n|---|---|---:|---:|---:|---|---:|---|\n", cell(c.A), cell(c.B))
	for _, r := range c.Rows {
		d := "–"
		if r.Delta != nil {
			d = format(r.Key, *r.Delta, true)
		}
		test, pv := "–", "–"
		if r.Test != nil {
			test, pv = r.Test.Method, fmt.Sprintf("%.3g", r.Test.P)
		}
		p("| %s | %s | %s | %s | %s | %s | %s | %s |\n", cell(r.Task), cell(r.Key), withErr(r.Key, r.A, r.StderrA), withErr(r.Key, r.B, r.StderrB), d, test, pv, r.Verdict)
	}
	for _, ch := range charts {
		p("\n![comparison](%s)\n", ch)
	}
	return bw.Flush()
}

// withErr prints a value with its standard error, when it has one.
func withErr(key string, v *float64, se float64) string {
	if v == nil || se == 0 {
		return opt(key, v)
	}
	if isRate(key) {
		return fmt.Sprintf("%s ± %.1f", pct(*v), 100*se)
	}
	return fmt.Sprintf("%.3f ± %.3f", *v, se)
}

func isRate(key string) bool {
	return strings.Contains(key, "rate") || strings.HasPrefix(key, "acc") || strings.HasPrefix(key, "generative") || key == "exact_match"
}

func opt(key string, v *float64) string {
	if v == nil {
		return "–"
	}
	return format(key, *v, false)
}

// format prints rates as percentages and everything else with two decimals.
func format(key string, v float64, signed bool) string {
	sign := ""
	if signed && v > 0 {
		sign = "+"
	}
	if isRate(key) {
		if signed {
			return fmt.Sprintf("%s%.1f pp", sign, 100*v)
		}
		return pct(v)
	}
	return fmt.Sprintf("%s%.2f", sign, v)
}

// seFormat prints a standard error in the unit format prints its metric.
func seFormat(key string, se float64) string {
	if isRate(key) {
		return fmt.Sprintf("%.1f pp", 100*se)
	}
	return fmt.Sprintf("%.2f", se)
}

func pct(v float64) string { return fmt.Sprintf("%.1f%%", 100*v) }

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func kindName(k eval.Kind) string {
	switch k {
	case eval.KindOpenQA:
		return "open questions"
	case eval.KindMultipleChoice:
		return "multiple choice"
	case eval.KindRefusal:
		return "refusals"
	case eval.KindVerbosity:
		return "verbosity"
	case eval.KindHarness:
		return "lm-evaluation-harness"
	}
	return string(k)
}

// cell escapes text for a Markdown table cell.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}
