package train

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/pltune/pltune/internal/pyref"
)

type scheduleCase struct {
	Total       int     `json:"total"`
	WarmupRatio float64 `json:"warmup_ratio"`
	MinLRRatio  float64 `json:"min_lr_ratio"`
	LR          float64 `json:"lr"`
}

type hfSchedule struct {
	Warmup int       `json:"warmup"`
	LRs    []float64 `json:"lrs"`
}

// TestScheduleMatchesTransformers: the learning rate of every optimizer
// step equals what transformers' Trainer takes with
// get_cosine_schedule_with_warmup (get_cosine_with_min_lr_schedule_with_warmup
// for a floor), warmup counted by TrainingArguments.get_warmup_steps — both
// the Schedule and a Run's StepRecord.LR.
func TestScheduleMatchesTransformers(t *testing.T) {
	py := pyref.Require(t)
	cases := []scheduleCase{
		{Total: 10, WarmupRatio: 0.1, LR: 1e-3},
		{Total: 37, WarmupRatio: 0.03, LR: 1e-5},
		{Total: 16, WarmupRatio: 0.2, LR: 0.05},
		{Total: 7, WarmupRatio: 0.3, MinLRRatio: 0.1, LR: 2e-5},
		{Total: 100, WarmupRatio: 0.05, MinLRRatio: 0.25, LR: 3e-4},
		{Total: 5, WarmupRatio: 0.5, LR: 1e-4},
		{Total: 1, WarmupRatio: 0.03, LR: 1e-4},
	}
	in := filepath.Join(t.TempDir(), "cases.json")
	b, _ := json.Marshal(cases)
	if err := os.WriteFile(in, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, filepath.Join("testdata", "schedule", "hf_schedule.py"), in)
	cmd.Env = append(os.Environ(), "HF_HUB_OFFLINE=1", "TRANSFORMERS_VERBOSITY=error")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("hf_schedule.py: %v", err)
	}
	var want []hfSchedule
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatalf("hf_schedule.py output: %v\n%s", err, out)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-12*math.Max(math.Abs(b), 1e-12) }
	for i, c := range cases {
		s := WarmupCosine(c.LR, c.Total, c.WarmupRatio, c.MinLRRatio)
		if s.WarmupSteps != want[i].Warmup {
			t.Errorf("%+v: %d warmup steps, transformers %d", c, s.WarmupSteps, want[i].Warmup)
		}
		for step, w := range want[i].LRs {
			if got := s.LR(step); !near(got, w) {
				t.Errorf("%+v: step %d: lr %v, transformers %v", c, step, got, w)
			}
		}
	}
	// The trainer's own steps: 16 steps of the bigram (8 windows × 2
	// epochs), the third case.
	c := cases[2]
	cfg := testConfig(t.TempDir())
	cfg.LR, cfg.WarmupRatio = c.LR, c.WarmupRatio
	var got []float64
	cfg.OnStep = func(r StepRecord) { got = append(got, r.LR) }
	runBigram(t, cfg, newBigram(t, 8))
	if len(got) != c.Total {
		t.Fatalf("%d steps, want %d", len(got), c.Total)
	}
	for step, w := range want[2].LRs {
		if !near(got[step], w) {
			t.Errorf("Run step %d: lr %v, transformers %v", step+1, got[step], w)
		}
	}
}
