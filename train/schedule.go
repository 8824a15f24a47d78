package train

import "math"

// Schedule is a learning-rate schedule: linear warmup from zero to PeakLR
// over WarmupSteps optimizer steps, then cosine decay to PeakLR·MinLRRatio at
// TotalSteps. Steps past TotalSteps stay at the floor.
type Schedule struct {
	PeakLR      float64
	WarmupSteps int
	TotalSteps  int
	MinLRRatio  float64
}

// LR is the learning rate of optimizer step step (0-based).
func (s Schedule) LR(step int) float64 {
	if s.WarmupSteps > 0 && step < s.WarmupSteps {
		return s.PeakLR * float64(step+1) / float64(s.WarmupSteps)
	}
	floor := s.PeakLR * s.MinLRRatio
	decay := s.TotalSteps - s.WarmupSteps
	if decay <= 0 {
		return s.PeakLR
	}
	progress := math.Min(1, float64(step-s.WarmupSteps)/float64(decay))
	return floor + (s.PeakLR-floor)*0.5*(1+math.Cos(math.Pi*progress))
}
