package align

import (
	"context"
	"errors"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/pltune/pltune/train"
)

// Evaluate returns obj's mean loss and metrics per unit (per pair for ORPO
// and DPO: reward_accuracy is then the share of pairs ranked right) over
// all its examples, in order, without gradients.
func Evaluate(ctx context.Context, obj train.Objective, batchSize int) (loss float64, metrics map[string]float64, err error) {
	if batchSize <= 0 {
		batchSize = 1
	}
	metrics = map[string]float64{}
	var units float64
	torchx.NoGrad(func() {
		for i := 0; i < obj.Len(); i += batchSize {
			if err = ctx.Err(); err != nil {
				return
			}
			idx := make([]int, 0, batchSize)
			for j := i; j < min(i+batchSize, obj.Len()); j++ {
				idx = append(idx, j)
			}
			var l *train.Loss
			if l, err = obj.Loss(idx); err != nil {
				return
			}
			loss += torchx.Float64s(l.Sum, false)[0]
			for k, v := range l.AllMetrics() {
				metrics[k] += v
			}
			l.Release()
			units += float64(obj.Units(idx))
		}
	})
	if err != nil {
		return 0, nil, err
	}
	if units == 0 {
		return 0, nil, errors.New("align: nothing to evaluate")
	}
	for k := range metrics {
		metrics[k] /= units
	}
	return loss / units, metrics, nil
}
