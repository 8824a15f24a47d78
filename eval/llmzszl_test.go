package eval

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"
)

// TestLLMzSzL reads a file in LLMzSzŁ's layout (question, answers,
// correct_answer_index, type, name, year as a number or a string) and
// reports accuracy per exam type and subject, each with a standard error.
func TestLLMzSzL(t *testing.T) {
	task, err := ReadTaskFile(filepath.Join("testdata", "llmzszl-test.jsonl"), "")
	if err != nil {
		t.Fatal(err)
	}
	if task.Kind != KindMultipleChoice || task.Len() != 6 || task.MC[3].ID != "line-4" {
		t.Fatalf("kind %s, %d items, %+v", task.Kind, task.Len(), task.MC[3])
	}
	// The fake model prefers the second answer everywhere: right on items
	// 1, 3, 4 and 5 (0-based 0, 2, 3, 4).
	m := &scriptedModel{lls: map[string][]float64{"": {-3, -1, -2, -4}}}
	res, err := Run(context.Background(), m, []*Task{task}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mc := res.Tasks[0].MC
	if mc.Acc.Correct != 4 || mc.Acc.Total != 6 {
		t.Errorf("acc %+v", mc.Acc)
	}
	types := map[string]Accuracy{}
	for _, c := range mc.Types {
		types[c.Category] = c.Accuracy
	}
	if types["Egzamin ósmoklasisty"].Correct != 1 || types["Matura"].Correct != 2 || types["Egzamin zawodowy"].Correct != 1 || len(types) != 3 {
		t.Errorf("types %+v", mc.Types)
	}
	subjects := map[string]Accuracy{}
	for _, c := range mc.Subjects {
		subjects[c.Category] = c.Accuracy
	}
	if h := subjects["historia"]; h.Correct != 2 || h.Total != 2 || len(subjects) != 5 {
		t.Errorf("subjects %+v", mc.Subjects)
	}
	got := map[string]Metric{}
	for _, m := range res.Metrics() {
		got[m.Key] = m
	}
	// acc 4/6: sqrt((4·(1/3)² + 2·(2/3)²)/5)/√6.
	want := math.Sqrt((4.0/9+8.0/9)/5) / math.Sqrt(6)
	if a := got["acc"]; math.Abs(a.Stderr-want) > 1e-12 || a.N != 6 {
		t.Errorf("acc %+v; stderr want %v", a, want)
	}
	if a, ok := got["accuracy/type/Matura"]; !ok || a.Value != 1 || a.N != 2 {
		t.Errorf("accuracy/type/Matura %+v", a)
	}
	if a, ok := got["accuracy/subject/historia"]; !ok || a.Value != 1 {
		t.Errorf("accuracy/subject/historia %+v", a)
	}
	if !strings.Contains(res.Tasks[0].Items[0].Group, "ósmoklasisty") {
		t.Errorf("item 0 group %q", res.Tasks[0].Items[0].Group)
	}
}
