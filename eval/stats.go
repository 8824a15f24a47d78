package eval

import (
	"math"
	"math/rand/v2"
)

// MeanStderr is the standard error of a mean as lm-evaluation-harness
// reports it (lm_eval.api.metrics.mean_stderr): the sample standard deviation
// (n−1 in the denominator) divided by √n. It is 0 for fewer than two values.
func MeanStderr(xs []float64) float64 {
	n := len(xs)
	if n < 2 {
		return 0
	}
	mean := 0.0
	for _, x := range xs {
		mean += x
	}
	mean /= float64(n)
	ss := 0.0
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	return math.Sqrt(ss/float64(n-1)) / math.Sqrt(float64(n))
}

// BootstrapIters is the number of resamples behind bootstrap standard errors
// and paired bootstrap tests.
const BootstrapIters = 1000

// bootstrapSeed fixes the resamples, so that a report is reproducible.
const bootstrapSeed = 1234

// BootstrapStderr is the standard error of a statistic that is not a mean
// (F1, a ratio of sums): the sample standard deviation of the statistic over
// iters resamples of the n items with replacement, as lm-evaluation-harness's
// bootstrap_stderr computes it. stat receives the resampled item indices.
func BootstrapStderr(n, iters int, stat func(idx []int) float64) float64 {
	if n < 2 || iters < 2 {
		return 0
	}
	rng := rand.New(rand.NewPCG(bootstrapSeed, uint64(n)))
	idx := make([]int, n)
	vals := make([]float64, iters)
	for b := range vals {
		for i := range idx {
			idx[i] = rng.IntN(n)
		}
		vals[b] = stat(idx)
	}
	return sampleStd(vals)
}

func sampleStd(xs []float64) float64 {
	return MeanStderr(xs) * math.Sqrt(float64(len(xs)))
}

// McNemar tests paired binary outcomes: b counts items right in run A and
// wrong in B, c the reverse. Below 25 discordant pairs it returns the exact
// two-sided binomial p-value (min(1, 2·P[X ≤ min(b,c)]) with X ~ Bin(b+c,
// ½)); from 25 on the χ² statistic with continuity correction,
// (|b−c|−1)²/(b+c), on one degree of freedom. The method is named in the
// second result.
func McNemar(b, c int) (p float64, method string) {
	n := b + c
	if n == 0 {
		return 1, "mcnemar-exact"
	}
	if n < 25 {
		k := min(b, c)
		tail := 0.0
		for i := 0; i <= k; i++ {
			tail += math.Exp(logChoose(n, i) - float64(n)*math.Ln2)
		}
		return math.Min(1, 2*tail), "mcnemar-exact"
	}
	d := math.Abs(float64(b-c)) - 1
	chi2 := d * d / float64(n)
	// The χ²(1) survival function: P[Z² > x] = erfc(√(x/2)).
	return math.Erfc(math.Sqrt(chi2 / 2)), "mcnemar-chi2"
}

func logChoose(n, k int) float64 {
	a, _ := math.Lgamma(float64(n + 1))
	b, _ := math.Lgamma(float64(k + 1))
	c, _ := math.Lgamma(float64(n - k + 1))
	return a - b - c
}

// PairedBootstrap tests whether stat differs between two runs on the same n
// items: it resamples item indices with replacement iters times, applying
// the same resample to both runs, and returns the two-sided p-value
// 2·(k+1)/(iters+1), k = min(#[Δ* ≤ 0], #[Δ* ≥ 0]), capped at 1, of the
// resampled differences Δ* = statB − statA (Koehn 2004's percentile test;
// the +1 keeps a finite number of resamples from claiming p = 0).
func PairedBootstrap(n, iters int, statA, statB func(idx []int) float64) float64 {
	if n == 0 || iters < 1 {
		return 1
	}
	rng := rand.New(rand.NewPCG(bootstrapSeed, uint64(n)+1))
	idx := make([]int, n)
	le, ge := 0, 0
	for range iters {
		for i := range idx {
			idx[i] = rng.IntN(n)
		}
		d := statB(idx) - statA(idx)
		if d <= 0 {
			le++
		}
		if d >= 0 {
			ge++
		}
	}
	p := 2 * float64(min(le, ge)+1) / float64(iters+1)
	return math.Min(1, p)
}

// F1 is the F1 score of the positive class 1 from gold and predicted labels,
// as scikit-learn's f1_score computes it (0 when there are no true
// positives).
func F1(gold, pred []int) float64 {
	return classF1(gold, pred, 1)
}

// MacroF1 is the unweighted mean of the per-class F1 over the classes that
// occur in gold or pred, as scikit-learn's f1_score(average="macro").
func MacroF1(gold, pred []int) float64 {
	seen := map[int]bool{}
	for i := range gold {
		seen[gold[i]] = true
		seen[pred[i]] = true
	}
	if len(seen) == 0 {
		return 0
	}
	sum := 0.0
	for c := range seen {
		sum += classF1(gold, pred, c)
	}
	return sum / float64(len(seen))
}

func classF1(gold, pred []int, class int) float64 {
	tp, fp, fn := 0, 0, 0
	for i := range gold {
		switch {
		case gold[i] == class && pred[i] == class:
			tp++
		case pred[i] == class:
			fp++
		case gold[i] == class:
			fn++
		}
	}
	if tp == 0 {
		return 0
	}
	return 2 * float64(tp) / float64(2*tp+fp+fn)
}
