package report

import (
	"fmt"
	"image/color"
	"io"
	"os"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/pltune/pltune/eval"
)

// Colours of the first and second run in side-by-side charts.
var (
	colorA = color.RGBA{R: 0x44, G: 0x77, B: 0xaa, A: 0xff}
	colorB = color.RGBA{R: 0xee, G: 0x66, B: 0x77, A: 0xff}
)

// CategoryChart plots an open-question task's accuracy per category, with
// the overall accuracy as the last bar.
func CategoryChart(r *eval.Result, task string) (*plot.Plot, error) {
	t := r.Task(task)
	if t == nil || t.OpenQA == nil {
		return nil, fmt.Errorf("report: no open-question task %q in the result", task)
	}
	var names []string
	var vals plotter.Values
	for _, c := range t.OpenQA.Categories {
		names = append(names, fmt.Sprintf("%s\n(%d)", c.Category, c.Total))
		vals = append(vals, 100*c.Rate)
	}
	names = append(names, fmt.Sprintf("overall\n(%d)", t.OpenQA.Total))
	vals = append(vals, 100*t.OpenQA.Rate)
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: accuracy by category — %s", task, r.Model)
	p.Y.Label.Text = "accuracy, %"
	p.Y.Min = 0
	bars, err := plotter.NewBarChart(vals, vg.Points(28))
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	bars.Color = colorA
	bars.LineStyle.Width = 0
	l, err := valueLabels(vals, "%")
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	l.Offset = vg.Point{Y: vg.Points(3)}
	p.Add(bars, l, plotter.NewGrid())
	p.NominalX(names...)
	frame(p, len(names), 100, "%")
	return p, nil
}

// panel is one tile of the comparison chart: a metric per task, both runs.
type panel struct {
	title, unit string
	kind        eval.Kind
	key         string
	scale       float64
}

var comparisonPanels = []panel{
	{"PLCC-style accuracy", "%", eval.KindOpenQA, "accuracy", 100},
	{"False refusal rate (benign prompts)", "%", eval.KindRefusal, "false_refusal_rate", 100},
	{"Verbosity: words / reference", "ratio", eval.KindVerbosity, "words_ratio", 1},
	{"Style findings per 1,000 words", "findings", "", "style_per_1000_words", 1},
}

// ComparisonChart draws the two runs side by side in four tiles: open
// question accuracy, false refusal rate, verbosity against the reference, and
// the style score. A tile without data says so.
func ComparisonChart(c *eval.Comparison) ([]*plot.Plot, error) {
	var plots []*plot.Plot
	for _, pn := range comparisonPanels {
		var names []string
		var va, vb plotter.Values
		for _, row := range c.Rows {
			if row.Key != pn.key || (pn.kind != "" && row.Kind != pn.kind) {
				continue
			}
			names = append(names, row.Task)
			va = append(va, scaled(row.A, pn.scale))
			vb = append(vb, scaled(row.B, pn.scale))
		}
		p, err := groupedBars(pn.title, pn.unit, names, va, vb, c.A, c.B)
		if err != nil {
			return nil, err
		}
		plots = append(plots, p)
	}
	return plots, nil
}

// CategoryComparisonChart plots an open-question task's accuracy per
// category for both runs side by side.
func CategoryComparisonChart(c *eval.Comparison, task string) (*plot.Plot, error) {
	var names []string
	var va, vb plotter.Values
	for _, row := range c.Rows {
		if row.Task != task || row.Kind != eval.KindOpenQA {
			continue
		}
		name := strings.TrimPrefix(row.Key, "accuracy/")
		if row.Key == "accuracy" {
			name = "overall"
		}
		names = append(names, name)
		va = append(va, scaled(row.A, 100))
		vb = append(vb, scaled(row.B, 100))
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("report: no open-question task %q in the comparison", task)
	}
	// The overall bar goes last, as in CategoryChart.
	names = append(names[1:], names[0])
	va = append(va[1:], va[0])
	vb = append(vb[1:], vb[0])
	return groupedBars(task+": accuracy by category", "%", names, va, vb, c.A, c.B)
}

// groupedBars draws two bars per name, the first run's left of the second's.
// An empty names gives a plot titled "no data".
func groupedBars(title, unit string, names []string, va, vb plotter.Values, labelA, labelB string) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = unit
	p.Y.Min = 0
	if len(names) == 0 {
		p.Title.Text += " — no data"
		p.HideAxes()
		return p, nil
	}
	w := vg.Points(22)
	top := 0.0
	for i, side := range []struct {
		vals  plotter.Values
		label string
		col   color.Color
	}{{va, labelA, colorA}, {vb, labelB, colorB}} {
		b, err := plotter.NewBarChart(side.vals, w)
		if err != nil {
			return nil, fmt.Errorf("report: %s: %w", title, err)
		}
		b.Color = side.col
		b.LineStyle.Width = 0
		b.Offset = w * vg.Length(2*i-1) / 2
		p.Add(b)
		p.Legend.Add(side.label, b)
		l, err := valueLabels(side.vals, unit)
		if err != nil {
			return nil, fmt.Errorf("report: %s: %w", title, err)
		}
		l.Offset = vg.Point{X: b.Offset, Y: vg.Points(3)}
		p.Add(l)
		for _, v := range side.vals {
			top = max(top, v)
		}
	}
	frame(p, len(names), top, unit)
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	p.NominalX(names...)
	return p, nil
}

// scaled returns v·s, or 0 when the run lacks the metric.
func scaled(v *float64, s float64) float64 {
	if v == nil {
		return 0
	}
	return *v * s
}

// WritePNG renders one plot as a PNG of the given size.
func WritePNG(w io.Writer, p *plot.Plot, width, height vg.Length) error {
	c := vgimg.New(width, height)
	p.Draw(draw.New(c))
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(w); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// WriteTiledPNG renders plots in a grid of cols columns, each tile
// tileW×tileH.
func WriteTiledPNG(w io.Writer, plots []*plot.Plot, cols int, tileW, tileH vg.Length) error {
	rows := (len(plots) + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for i := range grid {
		grid[i] = make([]*plot.Plot, cols)
		for j := range cols {
			if k := i*cols + j; k < len(plots) {
				grid[i][j] = plots[k]
			}
		}
	}
	img := vgimg.New(tileW*vg.Length(cols), tileH*vg.Length(rows))
	dc := draw.New(img)
	t := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	canvases := plot.Align(grid, t, dc)
	for i := range grid {
		for j, p := range grid[i] {
			if p != nil {
				p.Draw(canvases[i][j])
			}
		}
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// frame leaves room beside the outer bars and above the tallest one for its
// value label and the legend.
func frame(p *plot.Plot, n int, top float64, unit string) {
	p.X.Min, p.X.Max = -0.75, float64(n)-0.25
	floor := 1.0
	if unit == "%" {
		floor = 10
	}
	p.Y.Max = max(top, floor) * 1.3
}

// valueLabels prints each bar's value above it, centred.
func valueLabels(vals plotter.Values, unit string) (*plotter.Labels, error) {
	xy := plotter.XYLabels{XYs: make(plotter.XYs, len(vals)), Labels: make([]string, len(vals))}
	for i, v := range vals {
		xy.XYs[i] = plotter.XY{X: float64(i), Y: v}
		if unit == "%" {
			xy.Labels[i] = fmt.Sprintf("%.3g", v)
		} else {
			xy.Labels[i] = fmt.Sprintf("%.2f", v)
		}
	}
	l, err := plotter.NewLabels(xy)
	if err != nil {
		return nil, err
	}
	for i := range l.TextStyle {
		l.TextStyle[i].XAlign = draw.XCenter
	}
	return l, nil
}
