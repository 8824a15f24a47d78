package report

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pltune/pltune/eval"
)

func sampleResult(model string, plcc, history, falseRefusal, wordsRatio, style float64) *eval.Result {
	return &eval.Result{
		Model:   model,
		Started: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC), Finished: time.Date(2026, 11, 26, 12, 5, 0, 0, time.UTC),
		Settings: eval.Settings{MCMode: eval.MCLoglikelihood},
		Tasks: []eval.TaskResult{
			{Name: "plcc", Kind: eval.KindOpenQA, OpenQA: &eval.OpenQAScore{
				Accuracy: eval.Accuracy{Correct: 3, Total: 4, Rate: plcc},
				Categories: []eval.CategoryAccuracy{
					{Category: "geography", Accuracy: eval.Accuracy{Correct: 2, Total: 2, Rate: 1}},
					{Category: "history", Accuracy: eval.Accuracy{Correct: 1, Total: 2, Rate: history}},
				},
			}},
			{Name: "mc", Kind: eval.KindMultipleChoice, MC: &eval.MCScore{
				Acc: &eval.Accuracy{Correct: 1, Total: 2, Rate: 0.5}, AccNorm: &eval.Accuracy{Correct: 2, Total: 2, Rate: 1},
			}},
			{Name: "refusal", Kind: eval.KindRefusal, Refusal: &eval.RefusalScore{
				Benign: 50, FalseRefusals: int(50 * falseRefusal), FalseRefusalRate: falseRefusal, Harmful: 20, HarmfulRefused: 19, HarmfulRefusalRate: 0.95,
				Categories: []eval.RefusalCategory{
					{Category: "homonyms", Prompts: 50, Refused: int(50 * falseRefusal), Rate: falseRefusal},
					{Category: "weapons", Harmful: true, Prompts: 20, Refused: 19, Rate: 0.95},
				},
			}, Style: &eval.StyleScore{Responses: 70, Words: 7000, Findings: int(7 * style), Per1000Words: style}},
			{Name: "verbosity", Kind: eval.KindVerbosity, Verbosity: &eval.VerbosityScore{
				Words: eval.LengthStats{Response: eval.Summary{N: 10, Mean: 120}, Reference: eval.Summary{N: 10, Mean: 100}, Ratio: wordsRatio},
			}, Style: &eval.StyleScore{Responses: 10, Words: 1200, Findings: 2, Per1000Words: style}},
		},
	}
}

func decodePNG(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if r := img.Bounds(); r.Dx() < 300 || r.Dy() < 200 {
		t.Errorf("%s: %v; want a readable size", path, r)
	}
}

func TestWriteRun(t *testing.T) {
	dir := t.TempDir()
	paths, err := WriteRun(dir, sampleResult("bielik", 0.75, 0.5, 0.02, 1.2, 1.5))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{eval.ResultFile, "charts/plcc-categories.png", ReportFile}
	if len(paths) != len(want) {
		t.Fatalf("wrote %v; want %v", paths, want)
	}
	for i, w := range want {
		if paths[i] != filepath.Join(dir, w) {
			t.Errorf("path %d = %s; want %s", i, paths[i], w)
		}
	}
	decodePNG(t, paths[1])
	md, _ := os.ReadFile(paths[2])
	for _, s := range []string{
		"# Evaluation of bielik",
		"| history | 1 | 2 | 50.0% |",
		"| **overall** | **3** | **4** | **75.0%** |",
		"| acc_norm | 2 | 2 | 100.0% |",
		"| benign (false refusals) | 50 | 1 | 2.0% |",
		"| weapons | harmful | 20 | 19 | 95.0% |",
		"| words | 120.0 |",
		"1.50 per 1,000 words",
		"![plcc](charts/plcc-categories.png)",
	} {
		if !strings.Contains(string(md), s) {
			t.Errorf("report.md lacks %q:\n%s", s, md)
		}
	}
	back, err := eval.ReadResult(dir)
	if err != nil || back.Model != "bielik" {
		t.Errorf("results.json read back: %v, %v", back, err)
	}
}

func TestWriteComparison(t *testing.T) {
	dir := t.TempDir()
	a := sampleResult("sft", 0.75, 0.5, 0.006, 1.0, 1.0)
	b := sampleResult("orpo", 0.70, 0.4, 0.06, 1.6, 2.5)
	c, paths, err := WriteComparison(dir, a, b)
	if err != nil {
		t.Fatal(err)
	}
	// The sample results carry no per-item scores: nothing to test, so no
	// verdict of better or worse.
	if r := c.Row("refusal", "false_refusal_rate"); r == nil || r.Verdict != eval.VerdictUntested {
		t.Errorf("false refusal row = %+v; want untested", r)
	}
	var pngs int
	for _, p := range paths {
		if strings.HasSuffix(p, ".png") {
			decodePNG(t, p)
			pngs++
		}
	}
	if pngs != 2 {
		t.Errorf("%d PNGs in %v; want the 4-tile chart and the category chart", pngs, paths)
	}
	md, _ := os.ReadFile(filepath.Join(dir, ComparisonFile))
	for _, s := range []string{
		"# sft vs orpo",
		"| refusal | false_refusal_rate | 0.6% | 6.0% | +5.4 pp | – | – | untested |",
		"| plcc | accuracy | 75.0% | 70.0% | -5.0 pp | – | – | untested |",
		"| verbosity | words_ratio | 1.00 | 1.60 | +0.60 | – | – |  |",
		"only when a paired test on the items both runs answered",
		"![comparison](comparison.png)",
	} {
		if !strings.Contains(string(md), s) {
			t.Errorf("comparison.md lacks %q:\n%s", s, md)
		}
	}
}

func TestComparisonChartWithoutData(t *testing.T) {
	a := &eval.Result{Model: "a"}
	plots, err := ComparisonChart(eval.Compare(a, a))
	if err != nil {
		t.Fatal(err)
	}
	if len(plots) != 4 || !strings.Contains(plots[1].Title.Text, "no data") {
		t.Errorf("%d plots, second titled %q; want 4 with 'no data'", len(plots), plots[1].Title.Text)
	}
	var buf bytes.Buffer
	if err := WriteTiledPNG(&buf, plots, 2, chartWidth, chartHeight); err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(&buf); err != nil {
		t.Error(err)
	}
}

func TestFileName(t *testing.T) {
	for in, want := range map[string]string{"plcc": "plcc", "a/b c": "a_b_c", "..": "task", "łódź-1": "łódź-1"} {
		if got := fileName(in); got != want {
			t.Errorf("fileName(%q) = %q; want %q", in, got, want)
		}
	}
}
