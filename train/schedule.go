package train

import "math"

// LRSchedule gives the learning rate of each optimizer step. The trainer
// asks it once per step, with the 0-based number of the step about to be
// taken; a schedule must be a pure function of that number so a resumed
// run takes the learning rates the uninterrupted one did.
type LRSchedule interface {
	LR(step int) float64
}

// Schedule is the default LRSchedule, transformers'
// get_cosine_schedule_with_warmup (get_cosine_with_min_lr_schedule_with_warmup
// with min_lr_rate = MinLRRatio): linear warmup from zero over WarmupSteps
// optimizer steps, then cosine decay to PeakLR·MinLRRatio at TotalSteps.
// Step k (0-based) gets the scheduler's value at k, the learning rate
// torch's LambdaLR has set when the Hugging Face Trainer takes its k-th
// step, so the first step of a warmup has learning rate 0. Steps past
// TotalSteps stay at the floor.
type Schedule struct {
	PeakLR      float64
	WarmupSteps int
	TotalSteps  int
	MinLRRatio  float64
}

// WarmupCosine returns the Schedule of a run of total steps with the first
// ceil(ratio·total) of them warming up, as transformers'
// TrainingArguments.get_warmup_steps counts them.
func WarmupCosine(peak float64, total int, warmupRatio, minLRRatio float64) Schedule {
	return Schedule{PeakLR: peak, WarmupSteps: int(math.Ceil(warmupRatio * float64(total))), TotalSteps: total, MinLRRatio: minLRRatio}
}

// LR is the learning rate of optimizer step step (0-based).
func (s Schedule) LR(step int) float64 {
	if step < s.WarmupSteps {
		return s.PeakLR * float64(step) / float64(max(1, s.WarmupSteps))
	}
	progress := math.Min(1, float64(step-s.WarmupSteps)/float64(max(1, s.TotalSteps-s.WarmupSteps)))
	factor := 0.5 * (1 + math.Cos(math.Pi*progress))
	return s.PeakLR * max(0, factor*(1-s.MinLRRatio)+s.MinLRRatio)
}
