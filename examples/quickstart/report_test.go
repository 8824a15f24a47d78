package main

import (
	"fmt"
	"strings"
	"testing"

	"gonum.org/v1/plot/plotter"
)

func TestClipDump(t *testing.T) {
	lines := []string{"60 tokens, 20 trained", "  pos       id  label  token"}
	for i := range 60 {
		label := "-"
		if i >= 38 {
			label = "train"
		}
		lines = append(lines, fmt.Sprintf("%5d %8d %6s  %q", i, 100+i, label, fmt.Sprint("t", i)))
	}
	got := clipDump(strings.Join(lines, "\n"), 10)
	for _, want := range []string{"60 tokens, 20 trained", "… (34 lines before)", `"t34"`, `"t38"`, "… (13 more lines)", `"t59"`} {
		if !strings.Contains(got, want) {
			t.Errorf("clipped dump lacks %q:\n%s", want, got)
		}
	}
	for _, absent := range []string{`"t33"`, `"t45"`} {
		if strings.Contains(got, absent) {
			t.Errorf("clipped dump keeps %q:\n%s", absent, got)
		}
	}
	short := strings.Join(lines[:8], "\n")
	if clipDump(short, 10) != short {
		t.Error("a short dump was clipped")
	}
}

func TestMovingAverage(t *testing.T) {
	got := movingAverage(plotter.XYs{{X: 1, Y: 4}, {X: 2, Y: 2}, {X: 3, Y: 6}, {X: 4, Y: 0}}, 2)
	want := []float64{4, 3, 4, 3}
	for i, p := range got {
		if p.Y != want[i] || p.X != float64(i+1) {
			t.Errorf("point %d = %+v, want (%d, %g)", i, p, i+1, want[i])
		}
	}
}

func TestGroup(t *testing.T) {
	for n, want := range map[int64]string{7: "7", 1234: "1234", 12345: "12 345", 1234567: "1 234 567"} {
		if got := group(n); got != want {
			t.Errorf("group(%d) = %q, want %q", n, got, want)
		}
	}
}
