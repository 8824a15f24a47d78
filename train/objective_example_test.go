package train_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/pltune/pltune/train"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// nextToken is an Objective written outside pltune with its public API
// only: next-token cross-entropy over fixed-length sequences, and the
// share of next tokens the model already ranks first as a metric,
// computed without gradients and read to the host.
type nextToken struct {
	m    *train.Model
	seqs [][]int64
}

func (o *nextToken) Len() int { return len(o.seqs) }

func (o *nextToken) Units(idx []int) int {
	n := 0
	for _, i := range idx {
		n += len(o.seqs[i]) - 1
	}
	return n
}

// SetTraining lets Run switch dropout off for held-out losses.
func (o *nextToken) SetTraining(on bool) { o.m.SetTraining(on) }

func (o *nextToken) Loss(idx []int) (*train.Loss, error) {
	var in, target []int64
	for _, i := range idx {
		in = append(in, o.seqs[i]...)
	}
	T := int64(len(o.seqs[idx[0]]))
	x := ts.MustOfSlice(in).MustView([]int64{int64(len(idx)), T}, true)
	defer x.MustDrop()
	out, err := o.m.Forward(x, train.ForwardOptions{})
	if err != nil {
		return nil, err
	}
	defer out.Drop()
	for _, i := range idx {
		target = append(target, o.seqs[i][1:]...)
	}
	y := ts.MustOfSlice(target)
	defer y.MustDrop()
	V := out.Logits.MustSize()[2]
	logits := out.Logits.MustNarrow(1, 0, T-1, false).MustReshape([]int64{-1, V}, true)
	defer logits.MustDrop()
	sum := logits.MustCrossEntropyLoss(y, ts.None, 2, -100, 0, false) // reduction sum
	var top1 float64
	train.NoGrad(func() {
		hit := logits.MustArgmax([]int64{1}, false, false).MustEqTensor(y, true).MustTotype(gotch.Double, true)
		defer hit.MustDrop()
		for _, h := range train.HostFloat64s(hit) {
			top1 += h
		}
	})
	return &train.Loss{Sum: sum, Tokens: len(in), Metrics: map[string]float64{"top1": top1}}, nil
}

// An Objective defined outside the module, trained with LoRA: the loop
// sees it only through Len, Units and Loss; a recorder follows the run.
func ExampleObjective() {
	m, err := train.LoadModel("testdata/ref/llama", train.ModelOptions{Seed: 1})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Drop()
	if err := train.ApplyLoRA(m, train.LoRAConfig{Rank: 8, Alpha: 16, Dropout: 0.1}); err != nil {
		log.Fatal(err)
	}
	var seqs [][]int64
	for i := range 8 {
		s := make([]int64, 12)
		for j := range s {
			s[j] = int64(3 + (i+2*j)%40) // a pattern the adapters can learn
		}
		seqs = append(seqs, s)
	}
	obj := &nextToken{m: m, seqs: seqs[:6]}
	held := &nextToken{m: m, seqs: seqs[6:]}
	dir, err := os.MkdirTemp("", "pltune-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	var first, last float64
	tr, err := train.NewTrainer(train.TrainerConfig{
		OutDir: dir, MaxSteps: 12, BatchSize: 2, LR: 2e-2, EvalEvery: 12, NoFinalCheckpoint: true,
		Recorders: []train.Recorder{train.RecordFunc(func(r train.StepRecord) error {
			if r.Step == 1 {
				first = r.Loss
			}
			if r.EvalLoss != nil {
				last = *r.EvalLoss
			}
			return nil
		})},
	}, m.NamedParameters(), obj, held)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		log.Fatal(err)
	}
	fmt.Println("held-out loss below the first step's:", last < first)
	// Output:
	// held-out loss below the first step's: true
}
