package main

import (
	"bufio"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/pltune/pltune/eval"
	"github.com/pltune/pltune/eval/report"
)

// The files the report writes under --out.
const (
	reportFile = "report.md"
	lossChart  = "losses.png"
	evalDir    = "eval"
)

// summary collects what the stages produced.
type summary struct {
	Options          options
	Sizes            sizes
	Audit            *audit
	TokenizerDir     string
	TokenizerSeconds float64
	Vocab            int
	CharsPerToken    float64
	Params           int64
	SFTDropped       int
	SFTDump          string
	PairsDropped     int
	Stages           []*stageRun
	Before, After    *eval.Result
	TotalSeconds     float64
}

// write puts the evaluation runs, their comparison, the loss chart and
// report.md into out and returns report.md's path.
func (r *summary) write(out string) (string, error) {
	ed := filepath.Join(out, evalDir)
	if _, err := report.WriteRun(filepath.Join(ed, "before"), r.Before); err != nil {
		return "", err
	}
	if _, err := report.WriteRun(filepath.Join(ed, "after"), r.After); err != nil {
		return "", err
	}
	cmp, _, err := report.WriteComparison(ed, r.Before, r.After)
	if err != nil {
		return "", err
	}
	if err := writeLossChart(filepath.Join(out, lossChart), r.Stages); err != nil {
		return "", err
	}
	path := filepath.Join(out, reportFile)
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	bw := bufio.NewWriter(f)
	r.markdown(bw, cmp)
	if err := bw.Flush(); err != nil {
		f.Close()
		return "", err
	}
	return path, f.Close()
}

func writeLossChart(path string, stages []*stageRun) error {
	var plots []*plot.Plot
	for _, s := range stages {
		p := plot.New()
		p.Title.Text = s.Name + " loss"
		p.X.Label.Text = "step"
		p.Y.Label.Text = "loss"
		pts := make(plotter.XYs, len(s.Losses))
		for i, l := range s.Losses {
			pts[i] = plotter.XY{X: float64(i + 1), Y: l}
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		line.Color = color.RGBA{R: 160, G: 180, B: 210, A: 255}
		smooth, err := plotter.NewLine(movingAverage(pts, max(3, len(pts)/15)))
		if err != nil {
			return err
		}
		smooth.Color, smooth.Width = color.RGBA{R: 31, G: 78, B: 140, A: 255}, vg.Points(1.5)
		p.Add(plotter.NewGrid(), line, smooth)
		p.Legend.Add("per step", line)
		p.Legend.Add("moving average", smooth)
		p.Legend.Top = true
		plots = append(plots, p)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := report.WriteTiledPNG(f, plots, len(plots), 12*vg.Centimeter, 9*vg.Centimeter); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// movingAverage smooths pts over a trailing window of w steps, so that the
// trend of a noisy per-step loss is visible.
func movingAverage(pts plotter.XYs, w int) plotter.XYs {
	out := make(plotter.XYs, len(pts))
	sum := 0.0
	for i, p := range pts {
		sum += p.Y
		if i >= w {
			sum -= pts[i-w].Y
		}
		out[i] = plotter.XY{X: p.X, Y: sum / float64(min(i+1, w))}
	}
	return out
}

func (r *summary) markdown(w *bufio.Writer, cmp *eval.Comparison) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	z := r.Sizes
	p("# pltune quickstart\n\n")
	if r.Options.model == "" {
		p("A tiny Llama (%d layers, hidden %d, %d heads, %s parameters, vocabulary %d) pre-trained from scratch on pltune's embedded Polish text, then fine-tuned and aligned on its embedded instruction and preference samples. ",
			z.layers, z.hidden, z.heads, group(r.Params), r.Vocab)
	} else {
		p("LoRA (rank %d) on `%s` (%s parameters with the adapters), trained through every stage on pltune's embedded Polish samples. ",
			r.Options.loraRank, r.Options.model, group(r.Params))
	}
	p("The whole run took %s on this machine.\n\n", dur(r.TotalSeconds))

	a := r.Audit
	p("## Corpus\n\n")
	p("The embedded instruction samples (written for pltune in the PLLuMIC format; samples, not PLLuMIC itself), by origin and task type:\n\n")
	var sb strings.Builder
	_ = a.Stats.WriteMarkdown(&sb)
	p("%s\n", sb.String())
	p("The training mix caps every converted source at %d samples, as PLLuMIC caps them at 1,000, so the larger sources lose some:\n\n", convertedCap)
	p("| origin / source | available | capped | taken | %% of mix |\n|---|---:|---:|---:|---:|\n")
	for _, l := range a.MixReport.ByOrigin {
		p("| **%s** | %d | %d | %d | %.2f |\n", l.Key, l.Available, l.Capped, l.Taken, l.Share)
	}
	for _, l := range a.MixReport.BySource {
		if l.Capped > 0 {
			p("| %s | %d | %d | %d | %.2f |\n", l.Key, l.Available, l.Capped, l.Taken, l.Share)
		}
	}
	p("\nA seeded split stratified by origin and type keeps %d conversations for training and %d for the held-out SFT loss.\n\n", len(a.Train), len(a.Valid))

	p("## Tokenizer\n\n")
	if r.Options.model == "" {
		p("Byte-level BPE with the Llama-3 pre-tokenizer and chat template, trained in %s on the raw text and every message of the instruction samples: %d tokens, %.2f characters per token on the pre-training text. Files: `%s`.\n\n",
			dur(r.TokenizerSeconds), r.Vocab, r.CharsPerToken, r.TokenizerDir)
	} else {
		p("The model's own tokenizer: %d tokens, %.2f characters per token on the pre-training text.\n\n", r.Vocab, r.CharsPerToken)
	}
	p("The first SFT sample as trained (assistant-only labels; %d samples were longer than %d tokens and dropped):\n\n```\n%s\n```\n\n", r.SFTDropped, z.seqLen, clipDump(r.SFTDump, 36))

	p("## Training\n\n")
	p("| stage | data | steps | tokens | time | first loss | last loss | held-out loss | model |\n|---|---|---:|---:|---:|---:|---:|---:|---|\n")
	for _, s := range r.Stages {
		held := "–"
		if s.EvalLoss != nil {
			held = fmt.Sprintf("%.4f", *s.EvalLoss)
		}
		p("| %s | %s | %d | %s | %s | %.4f | %.4f | %s | `%s` |\n", s.Name, stageData(s, z, r.PairsDropped), s.Steps, group(int64(s.Tokens)), dur(s.Seconds), s.firstLoss(), s.lastLoss(), held, s.Final)
	}
	p("\nThe ORPO loss is the chosen answer's NLL plus λ·(−log σ(log-odds)), so it starts near the SFT loss. Per-step metrics are in each stage's `metrics.jsonl`.\n\n![loss curves](%s)\n\n", lossChart)

	p("## Evaluation before and after ORPO\n\n")
	p("On pltune's embedded evaluation samples (not the PLCC or LLMzSzŁ benchmarks), multiple choice by log-likelihood as lm-evaluation-harness does, the rest by greedy generation of at most %d tokens.\n\n", z.maxTokens)
	p("| metric | before (SFT) | after (ORPO) |\n|---|---:|---:|\n")
	for _, row := range headline {
		cr := cmp.Row(row.task, row.key)
		if cr == nil {
			continue
		}
		p("| %s | %s | %s |\n", row.label, fmtMetric(row.key, cr.A), fmtMetric(row.key, cr.B))
	}
	p("\n%s\n\n", r.honesty())
	p("![evaluation comparison](%s/%s)\n\n", evalDir, report.ComparisonChartFile)
	p("Every metric with its change: [%s/%s](%s/%s); each run's answers: `%s/before/`, `%s/after/`.\n",
		evalDir, report.ComparisonFile, evalDir, report.ComparisonFile, evalDir, evalDir)
}

// headline lists the report's evaluation rows.
var headline = []struct{ task, key, label string }{
	{"plcc", "accuracy", "PLCC-style open questions: accuracy"},
	{"mc", "acc", "multiple choice: acc"},
	{"mc", "acc_norm", "multiple choice: acc_norm"},
	{"refusal", "false_refusal_rate", "false refusal rate (benign prompts)"},
	{"refusal", "harmful_refusal_rate", "refusal rate on harmful prompts"},
	{"verbosity", "words_ratio", "verbosity: words / reference words"},
	{"plcc", "style_per_1000_words", "style findings per 1,000 words (open questions)"},
	{"verbosity", "style_per_1000_words", "style findings per 1,000 words (verbosity)"},
}

func fmtMetric(key string, v *float64) string {
	switch {
	case v == nil:
		return "–"
	case strings.Contains(key, "rate") || strings.HasPrefix(key, "acc"):
		return fmt.Sprintf("%.1f%%", 100**v)
	}
	return fmt.Sprintf("%.2f", *v)
}

// honesty says what the numbers can mean, with the chance level of the
// multiple-choice items.
func (r *summary) honesty() string {
	chance := mcChance(r.Sizes)
	if r.Options.model != "" {
		return fmt.Sprintf("Multiple-choice chance is about %.0f%%. With a few dozen items per task a difference of one answer moves a rate by several points; read the changes as a direction, not a measurement.", 100*chance)
	}
	return fmt.Sprintf("These are the scores of a model with a few million parameters trained for minutes on a few hundred kilobytes of Polish: it writes Polish-looking text but knows almost nothing, so multiple choice sits near chance (about %.0f%%) and open questions near zero. The pipeline, not the model, is what this run shows; with `--model DIR` the same stages run on a real model.", 100*chance)
}

// mcChance is the expected accuracy of guessing on the multiple-choice
// items the run asked.
func mcChance(z sizes) float64 {
	tasks, err := evalTasks(z)
	if err != nil {
		return 0
	}
	for _, t := range tasks {
		if t.Kind != eval.KindMultipleChoice || len(t.MC) == 0 {
			continue
		}
		sum := 0.0
		for _, it := range t.MC {
			sum += 1 / float64(len(it.Answers))
		}
		return sum / float64(len(t.MC))
	}
	return 0
}

func stageData(s *stageRun, z sizes, pairsDropped int) string {
	switch s.Name {
	case "cpt":
		return fmt.Sprintf("%d rows × %d tokens", s.Examples, z.seqLen)
	case "sft":
		return fmt.Sprintf("%d packed rows ≤ %d tokens", s.Examples, z.seqLen)
	}
	return fmt.Sprintf("%d pairs", s.Examples)
}

// clipDump keeps a token dump's header and the lines from just before the
// first trained token, where the labels start.
func clipDump(s string, lines int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) <= lines+6 {
		return s
	}
	from := 2
	for i := 2; i < len(ls); i++ {
		if f := strings.Fields(ls[i]); len(f) >= 3 && f[2] != "-" {
			from = max(2, i-4)
			break
		}
	}
	// The last lines show the end-of-turn token, trained as the answer's end.
	const tail = 3
	to := min(len(ls)-tail, from+lines)
	out := append([]string{ls[0], ls[1]}, fmt.Sprintf("… (%d lines before)", from-2))
	out = append(out, ls[from:to]...)
	if to < len(ls)-tail {
		out = append(out, fmt.Sprintf("… (%d more lines)", len(ls)-tail-to))
	}
	return strings.Join(append(out, ls[len(ls)-tail:]...), "\n")
}

func dur(sec float64) string {
	if sec < 60 {
		return fmt.Sprintf("%.1f s", sec)
	}
	return fmt.Sprintf("%d min %02d s", int(sec)/60, int(sec)%60)
}

// group writes n with spaces between groups of three digits, as Polish
// typesetting does from five digits up.
func group(n int64) string {
	s := fmt.Sprint(n)
	if len(s) < 5 {
		return s
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	return b.String()
}
