package report

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"

	"gonum.org/v1/plot/vg"

	"github.com/pltune/pltune/eval"
)

// The files a run folder and a comparison folder hold.
const (
	ReportFile           = "report.md"
	ComparisonFile       = "comparison.md"
	ComparisonJSONFile   = "comparison.json"
	ComparisonChartFile  = "comparison.png"
	chartsDir            = "charts"
	chartWidth           = 16 * vg.Centimeter
	chartHeight          = 10 * vg.Centimeter
	comparisonTileWidth  = 14 * vg.Centimeter
	comparisonTileHeight = 10 * vg.Centimeter
)

// WriteRun writes r to dir: eval.ResultFile (JSON), ReportFile (Markdown)
// and, for each open-question task, charts/<task>-categories.png. It
// returns the paths written.
func WriteRun(dir string, r *eval.Result) ([]string, error) {
	if err := os.MkdirAll(filepath.Join(dir, chartsDir), 0o755); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	written := []string{filepath.Join(dir, eval.ResultFile)}
	if err := r.WriteFile(written[0]); err != nil {
		return nil, err
	}
	charts := map[string]string{}
	for _, t := range r.Tasks {
		if t.OpenQA == nil {
			continue
		}
		p, err := CategoryChart(r, t.Name)
		if err != nil {
			return nil, err
		}
		rel := filepath.Join(chartsDir, fileName(t.Name)+"-categories.png")
		path := filepath.Join(dir, rel)
		if err := writeFile(path, func(w io.Writer) error { return WritePNG(w, p, chartWidth, chartHeight) }); err != nil {
			return nil, err
		}
		charts[t.Name] = filepath.ToSlash(rel)
		written = append(written, path)
	}
	md := filepath.Join(dir, ReportFile)
	if err := writeFile(md, func(w io.Writer) error { return Markdown(w, r, charts) }); err != nil {
		return nil, err
	}
	return append(written, md), nil
}

// WriteComparison compares a with b and writes to dir: ComparisonJSONFile,
// ComparisonFile (Markdown), ComparisonChartFile (four tiles: open-question
// accuracy, false refusal rate, verbosity, style) and, for each
// open-question task, charts/<task>-categories.png with both runs. It returns
// the comparison and the paths written.
func WriteComparison(dir string, a, b *eval.Result) (*eval.Comparison, []string, error) {
	return WriteComparisonAt(dir, a, b, eval.DefaultAlpha)
}

// WriteComparisonAt is WriteComparison with the significance level of the
// paired tests behind its verdicts.
func WriteComparisonAt(dir string, a, b *eval.Result, alpha float64) (*eval.Comparison, []string, error) {
	c := eval.CompareAt(a, b, alpha)
	if err := os.MkdirAll(filepath.Join(dir, chartsDir), 0o755); err != nil {
		return nil, nil, fmt.Errorf("report: %w", err)
	}
	var written []string
	js := filepath.Join(dir, ComparisonJSONFile)
	if err := writeFile(js, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(c)
	}); err != nil {
		return nil, nil, err
	}
	written = append(written, js)
	plots, err := ComparisonChart(c)
	if err != nil {
		return nil, nil, err
	}
	png := filepath.Join(dir, ComparisonChartFile)
	if err := writeFile(png, func(w io.Writer) error {
		return WriteTiledPNG(w, plots, 2, comparisonTileWidth, comparisonTileHeight)
	}); err != nil {
		return nil, nil, err
	}
	written = append(written, png)
	charts := []string{ComparisonChartFile}
	seen := map[string]bool{}
	for _, row := range c.Rows {
		if row.Kind != eval.KindOpenQA || seen[row.Task] {
			continue
		}
		seen[row.Task] = true
		p, err := CategoryComparisonChart(c, row.Task)
		if err != nil {
			return nil, nil, err
		}
		rel := filepath.Join(chartsDir, fileName(row.Task)+"-categories.png")
		path := filepath.Join(dir, rel)
		if err := writeFile(path, func(w io.Writer) error { return WritePNG(w, p, chartWidth, chartHeight) }); err != nil {
			return nil, nil, err
		}
		charts = append(charts, filepath.ToSlash(rel))
		written = append(written, path)
	}
	md := filepath.Join(dir, ComparisonFile)
	if err := writeFile(md, func(w io.Writer) error { return ComparisonMarkdown(w, c, charts) }); err != nil {
		return nil, nil, err
	}
	return c, append(written, md), nil
}

var unsafeName = regexp.MustCompile(`[^\p{L}\p{N}._-]+`)

// fileName makes a task name safe as a file name.
func fileName(task string) string {
	if s := unsafeName.ReplaceAllString(task, "_"); s != "" && s != "." && s != ".." {
		return s
	}
	return "task"
}
