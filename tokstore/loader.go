package tokstore

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/pltune/pltune/tokenize"
)

// Position is where a Loader stands: the epoch and the number of global
// batches of it already delivered. Saved with a checkpoint, it lets a
// resumed run continue with the very next batch.
type Position struct {
	Epoch  int `json:"epoch"`
	Cursor int `json:"cursor"`
}

// Loader walks rows in a seeded shuffled order, batch by batch: each epoch
// is a permutation of the rows drawn from Seed and the epoch number (the
// order train.Trainer uses, with one micro-batch per step), cut into
// global batches of BatchSize × World rows of which rank r takes the r-th
// BatchSize. The ranks' rows are disjoint; the last rows of an epoch that
// do not fill a global batch wait for a later epoch's order. The order
// depends only on Seed, World, BatchSize and the number of rows, so a
// Loader Seek'ed to a saved Position delivers what an uninterrupted one
// would have.
type Loader struct {
	Rows      Rows
	Seed      int64
	BatchSize int // rows per batch on this rank
	Rank      int
	World     int // 0 means 1

	pos   Position
	order []int
	ready int // the epoch of order, -1 before the first
}

// EpochOrder is the row order of an epoch: the same permutation on every
// rank and every resume (train.Trainer draws its order the same way).
func EpochOrder(n int, seed int64, epoch int) []int {
	r := rand.New(rand.NewPCG(uint64(seed), uint64(epoch)+0x9e3779b97f4a7c15))
	return r.Perm(n)
}

func (l *Loader) world() int { return max(1, l.World) }

// BatchesPerEpoch is the number of global batches in an epoch.
func (l *Loader) BatchesPerEpoch() int {
	if l.BatchSize <= 0 {
		return 0
	}
	return l.Rows.Len() / (l.BatchSize * l.world())
}

// Position is the position of the next batch.
func (l *Loader) Position() Position { return l.pos }

// Seek makes p the position of the next batch.
func (l *Loader) Seek(p Position) { l.pos = p }

// Next returns this rank's rows of the next global batch and advances.
func (l *Loader) Next() ([]tokenize.PackedRow, error) {
	idx, err := l.NextIndices()
	if err != nil {
		return nil, err
	}
	rows := make([]tokenize.PackedRow, len(idx))
	for k, i := range idx {
		if rows[k], err = l.Rows.Row(i); err != nil {
			return nil, err
		}
	}
	return rows, nil
}

// NextIndices is Next without reading the rows: their numbers.
func (l *Loader) NextIndices() ([]int, error) {
	w := l.world()
	switch {
	case l.BatchSize <= 0:
		return nil, errors.New("tokstore: Loader.BatchSize must be positive")
	case l.Rank < 0 || l.Rank >= w:
		return nil, fmt.Errorf("tokstore: rank %d outside a world of %d", l.Rank, w)
	}
	per := l.BatchesPerEpoch()
	if per == 0 {
		return nil, fmt.Errorf("tokstore: %d rows cannot fill one batch of %d × %d ranks", l.Rows.Len(), l.BatchSize, w)
	}
	for l.pos.Cursor >= per {
		l.pos.Epoch++
		l.pos.Cursor -= per
	}
	if l.order == nil || l.ready != l.pos.Epoch {
		l.order = EpochOrder(l.Rows.Len(), l.Seed, l.pos.Epoch)
		l.ready = l.pos.Epoch
	}
	off := l.pos.Cursor*l.BatchSize*w + l.Rank*l.BatchSize
	idx := append([]int(nil), l.order[off:off+l.BatchSize]...)
	l.pos.Cursor++
	return idx, nil
}
